"""Each segment against its own reference: per-value reference summaries kept with the profile.

A segment's data is rarely distributed like the whole population's: grocery purchases are
smaller than electronics ones, night-time traffic is not day-time traffic. Testing a segment's
window against the *population's* reference therefore flags every segment whose natural
distribution differs, as soon as the window has rows enough, drift or no drift. The right
reference of ``merchant_category=grocery`` is the reference data's grocery rows.

:func:`fit_segment_reference` summarizes the reference data per value of each named column
(the top ``k`` values by rows, as a window's segments: :func:`~raywatch.stats.grouped.summarize_segments`)
and stores the summaries in the profile's ``meta["segment_reference"]`` (plain JSON: each
summary as base64 of its codec bytes; written with the profile's bytes and covered by its
signature, not part of its fingerprint, so summaries made before still merge).
:func:`segment_profile` gives the profile as seen from one segment: the same bins (same
fingerprint, so the segment's window summaries are tested as they are) with that segment's
reference, without the multivariate extensions (those were fitted on the population).

Segments without a reference of their own — request attributes (route, version, replica,
multiplexed model id), values the reference did not have among its top ``k``, the
``__other__`` bucket, hashed labels — are tested against the population's reference, and the
verdict says so (:class:`~raywatch.drift.segmented.SegmentVerdict` ``reference``).

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> rng = np.random.default_rng(0)
>>> shop = rng.choice(["grocery", "electronics"], 20_000)
>>> ref = {"amount": np.where(shop == "grocery", 20.0, 400.0) * rng.lognormal(0, 0.5, 20_000), "shop": shop}
>>> profile = fit_segment_reference(Profile.fit(ref, seed=0), ref, ["shop"], seed=0)
>>> sorted(segment_references(profile)["shop"])
['electronics', 'grocery']
>>> view = segment_profile(profile, "shop", "grocery")
>>> view.fingerprint == profile.fingerprint, view.reference.rows == int((shop == "grocery").sum())
(True, True)
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Sequence

from raywatch.stats.memo import IdentityCache
from raywatch.stats.segments import OTHER, Segments, decode_summary, encode_state

__all__ = ["fit_segment_reference", "segment_references", "segment_profile", "META_KEY", "DEFAULT_REFERENCE_K",
           "DEFAULT_SAMPLE_SIZE"]

META_KEY = "segment_reference"
"""Where a profile's ``meta`` keeps its per-segment references: ``{"columns": {column: Segments.to_dict()}}``."""
DEFAULT_REFERENCE_K = 50
"""Values kept per column: more than a window keeps (20), so a value that rises into a
window's top ``k`` later still finds its reference."""
DEFAULT_SAMPLE_SIZE = 256
"""Each segment's reference sample (exact tests of small windows); the histograms are whole."""

_CACHE = IdentityCache(64)  # (profile, its raw references) → (references, segment views)
_NONE: Dict[str, Any] = {}


def fit_segment_reference(profile: Any, data: Any, columns: Sequence[str], *, k: int = DEFAULT_REFERENCE_K,
                          sample_size: int = DEFAULT_SAMPLE_SIZE, seed: Optional[int] = None) -> Any:
    """Store in ``profile.meta`` the reference summary of each of the top ``k`` values of each of
    ``columns`` over ``data`` (the reference the profile was fitted on). Returns the profile.

    The columns must be columns of ``data``; they need not be profiled columns (a request
    attribute logged with the reference data works too)."""
    from raywatch.stats.grouped import summarize_segments
    from raywatch.stats.columns import to_columns

    cols, _ = to_columns(data)
    missing = [c for c in columns if c not in cols]
    if missing:
        raise KeyError(f"segment reference columns not in the data: {', '.join(missing)}")
    batch = {c: cols[c] for c in profile.columns if c in cols}
    stored = dict((profile.meta.get(META_KEY) or {}).get("columns") or {})
    for col in columns:
        seg = summarize_segments(profile, batch, {col: cols[col]}, k=int(k), seed=seed, sample_size=int(sample_size))
        seg.whole = None  # the profile's reference is the whole
        stored[str(col)] = seg.to_dict(encode_state)
    profile.meta[META_KEY] = {"columns": stored}  # a new object: cached views of the old one miss
    return profile


def segment_references(profile: Any) -> Dict[str, Dict[str, Any]]:
    """Column → value → its reference :class:`~raywatch.stats.summary.WindowSummary` (empty when
    the profile has none); an entry that does not read back, or was made with other bins, is
    left out (its segment is tested against the population's reference)."""
    return _views(profile)[0]


def segment_profile(profile: Any, column: str, label: str) -> Optional[Any]:
    """The profile seen from segment ``column=label`` (its own reference), or None when the
    profile holds no reference for it (``__other__`` never has one: its mix of values changes)."""
    if label == OTHER:
        return None
    refs, views = _views(profile)
    summary = refs.get(column, {}).get(label)
    if summary is None:
        return None
    key = (column, label)
    view = views.get(key)
    if view is None:
        view = copy.copy(profile)  # shares the bins, specs and layouts (read-only)
        view.reference = summary
        view.extensions = {}  # fitted on the population: their tests would flag every segment
        view.meta = {k: v for k, v in profile.meta.items() if k != META_KEY}
        view.meta["segment"] = f"{column}={label}"
        views[key] = view
    return view


def _views(profile: Any) -> tuple:
    raw = (getattr(profile, "meta", None) or _NONE).get(META_KEY) or _NONE
    hit = _CACHE.get((profile, raw))
    if hit is not None:
        return hit
    refs: Dict[str, Dict[str, Any]] = {}
    for col, data in dict(raw.get("columns") or {}).items():
        try:
            seg = Segments.from_dict(data, decode_summary)
        except Exception:  # a damaged entry costs only its column
            continue
        kept = {label: s for label, s, _ in seg.items(col)
                if label != OTHER and s is not None and s.fingerprint == profile.fingerprint}
        if kept:
            refs[str(col)] = kept
    return _CACHE.put((profile, raw), (refs, {}))

