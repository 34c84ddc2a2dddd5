"""The reference side of feature attribution, kept with the profile, and tables as data.

:func:`~raywatch.drift.attribution.attribute_shift` compares a window's
:class:`~raywatch.drift.attribution.PredictionByBin` (the prediction's rows, sum and sum of
squares per feature bin) with the same table over the *reference* data. The stats actor has
no reference data, only the profile, so :func:`fit_reference` computes the reference table
when the profile is built and stores it in the profile's ``meta["attribution"]`` (plain
JSON, written with the profile's bytes and covered by its signature; not part of its
fingerprint, so summaries made before still merge). The replicas make the window's table at
each flush (:func:`window_table`, one ``update`` per flush) and the actor merges them per
window.

:func:`table_state` / :func:`table_from_state` store a table without its profile (the
actor's window state): the bin layout (``offsets``) travels with it and is checked.

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> rng = np.random.default_rng(0)
>>> ref = {"x1": rng.normal(size=5000), "x2": rng.normal(size=5000)}
>>> ref["score"] = ref["x1"] * 2.0
>>> profile = fit_reference(Profile.fit(ref, bins=10, seed=0), ref, predictions=["score"])
>>> sorted(reference_tables(profile)), reference_tables(profile)["score"].features
(['score'], ['x1', 'x2'])
>>> w = window_table(profile, "score")
>>> w.update({"x1": [3.0], "x2": [0.0], "score": [6.0]})
>>> bool((table_from_state(table_state(w)).table == w.table).all())
True
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, Mapping, Optional, Sequence

import numpy as np

from raywatch.drift.attribution import PredictionByBin
from raywatch.stats.memo import IdentityCache

__all__ = ["fit_reference", "reference_tables", "window_table", "table_state", "table_from_state", "META_KEY"]

META_KEY = "attribution"
"""Where a profile's ``meta`` keeps its reference tables: prediction → ``PredictionByBin.to_dict()``."""

_CACHE = IdentityCache(64)  # (profile, its raw tables) → the decoded tables
_NONE: Dict[str, Any] = {}


def fit_reference(profile: Any, data: Any, *, predictions: Sequence[str] = ("prediction",),
                  positive: Optional[Mapping[str, Hashable]] = None) -> Any:
    """Store in ``profile.meta`` the reference table of each prediction column over ``data``
    (the reference the profile was fitted on): the features are the profile's columns that
    are not predictions. ``positive`` maps a label prediction to the class whose share is
    attributed. Returns the profile."""
    preds = list(predictions)
    missing = [p for p in preds if p not in profile.specs]
    if missing:
        raise KeyError(f"prediction columns not in the profile: {', '.join(missing)}")
    features = [c for c in profile.columns if c not in preds]
    tables = dict(profile.meta.get(META_KEY) or {})
    for p in preds:
        t = PredictionByBin(profile, p, features, (positive or {}).get(p))
        t.update(data)
        tables[p] = t.to_dict()
    profile.meta[META_KEY] = tables  # a new object: cached tables of the old one miss
    return profile


def reference_tables(profile: Any) -> Dict[str, PredictionByBin]:
    """The reference tables a profile carries (empty when it has none), by prediction column;
    a table that does not fit the profile is left out."""
    if profile is None:
        return {}
    raw = profile.meta.get(META_KEY) or _NONE
    hit = _CACHE.get((profile, raw))
    if hit is not None:
        return hit
    out = {}
    for pred, data in raw.items():
        try:
            out[str(pred)] = PredictionByBin.from_dict(data, profile)
        except (KeyError, TypeError, ValueError):
            continue
    return _CACHE.put((profile, raw), out)


def window_table(profile: Any, prediction: str) -> PredictionByBin:
    """An empty table for a window, laid out like the profile's reference table of ``prediction``."""
    ref = reference_tables(profile)[prediction]
    return PredictionByBin(profile, prediction, ref.features, ref.positive)


def table_state(t: PredictionByBin) -> Dict[str, Any]:
    """A table as JSON-able data that :func:`table_from_state` reads back without the profile."""
    return dict(t.to_dict(), offsets=t.offsets.tolist())


def table_from_state(data: Mapping[str, Any]) -> PredictionByBin:
    """Inverse of :func:`table_state`. The table can be merged and compared, not updated;
    ValueError when its layout and sizes disagree."""
    offsets = np.asarray(data["offsets"], dtype=np.int64)
    features = [str(f) for f in data["features"]]
    table = np.asarray(data["table"], dtype=np.float64)
    if (offsets.ndim != 1 or offsets.size != len(features) + 1 or offsets[0] != 0 or (np.diff(offsets) < 2).any()
            or table.shape != (3, int(offsets[-1])) or (table[0] < 0).any() or not np.isfinite(table).all()):
        raise ValueError("damaged prediction table: its layout and sizes disagree")
    out = object.__new__(PredictionByBin)
    out.fingerprint = str(data["fingerprint"])
    out.prediction = str(data["prediction"])
    out.positive = data.get("positive")
    out.specs = []
    out.features = features
    out.offsets = offsets
    out.table = table
    out.skipped = int(data.get("skipped", 0))
    return out
