"""Drift, data quality and performance per segment, worst segments first.

:func:`evaluate_segments` is what the stats actor runs per window and model once the
window's :class:`~raywatch.stats.segments.Segments` of window summaries is merged: for every
segment column and every bucket (each kept value and ``__other__``) it runs
:func:`~raywatch.drift.detect_drift` against the reference profile (drift and data quality)
and, when given the window's per-segment performance accumulators
(:class:`~raywatch.drift.performance.ClassificationMetrics` or ``RegressionMetrics`` from
joined feedback), their ``result()``.

Each segment against its own reference: when the profile holds per-value references
(:mod:`raywatch.drift.segment_reference`, fitted with the profile), a segment is tested against
its value's reference rows, not the population's: a segment whose natural distribution
differs from the whole (grocery amounts are small) is not drift. Segments without one
(request attributes, ``__other__``, values the reference lacked) are tested against the
population's reference; ``SegmentVerdict.reference`` says which was used.

Multiple testing across segments: each segment's drift test already corrects across its
columns; with ``correct_across_segments`` (default) the level is also divided by the number
of buckets tested (Bonferroni), so the chance that *any* segment of a stationary window is
flagged stays at most ``alpha``, as for the segment-less test, instead of growing with the
number of segments.

Worst first: segments are ordered by whether the segment's data drifted, then its share of
drifted columns, then its number of data-quality issues, then its performance (lower
accuracy, or higher MAE, is worse), then traffic. ``missed_rows`` says how many of a segment's
rows may sit in ``__other__`` (see :mod:`raywatch.stats.segments`): non-zero means its figures
cover part of its traffic.

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> from raywatch.stats.grouped import summarize_segments
>>> rng = np.random.default_rng(0)
>>> profile = Profile.fit({"amount": rng.normal(size=20_000)}, seed=0)
>>> country = rng.choice(["de", "fr", "it"], 3000)
>>> amount = rng.normal(size=3000) + np.where(country == "fr", 1.0, 0.0)  # only fr drifts
>>> seg = summarize_segments(profile, {"amount": amount}, {"country": country}, seed=0)
>>> worst = evaluate_segments(profile, seg)["country"]
>>> [(v.segment, v.drift.dataset_drift, v.reference) for v in worst]
[('fr', True, 'population'), ('de', False, 'population'), ('it', False, 'population')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

from raywatch import series
from raywatch.config import DriftConfig
from raywatch.drift.detect import _config, detect_drift
from raywatch.drift.report import DriftReport, _clean
from raywatch.drift.segment_reference import segment_profile

__all__ = ["SegmentVerdict", "evaluate_segments"]


@dataclass
class SegmentVerdict:
    """One bucket of one segment column in one window."""

    column: str
    segment: str
    rows: int
    missed_rows: int
    drift: DriftReport
    performance: Optional[Dict[str, Any]] = None
    reference: str = "population"  # or "segment": the segment's own reference rows

    @property
    def quality_issues(self) -> int:
        return sum(len(q.issues) for q in self.drift.quality.values())

    def sort_key(self) -> tuple:
        perf = self.performance or {}
        if perf.get(series.ACCURACY.name) is not None:
            badness = 1.0 - perf[series.ACCURACY.name]
        elif perf.get(series.MAE.name) is not None:
            badness = perf[series.MAE.name]
        else:
            badness = 0.0
        return (not self.drift.dataset_drift, -self.drift.drift_share, -self.quality_issues, -badness, -self.rows)

    def to_dict(self) -> Dict[str, Any]:
        return _clean({
            "column": self.column, "segment": self.segment, "rows": self.rows, "missed_rows": self.missed_rows,
            series.DATASET_DRIFT.name: self.drift.dataset_drift, "drift_share": self.drift.drift_share,
            "drifted_columns": self.drift.drifted_columns, "quality_issues": self.quality_issues,
            "performance": self.performance, "reference": self.reference, "drift": self.drift.to_dict(),
        })


def evaluate_segments(
    profile: Any,
    summaries: Any,
    *,
    drift_config: Union[DriftConfig, Mapping[str, Any], None] = None,
    performance: Optional[Any] = None,
    correct_across_segments: bool = True,
    include_other: bool = True,
    reference_columns: Optional[Mapping[str, str]] = None,
) -> Dict[str, List[SegmentVerdict]]:
    """Per segment column: a :class:`SegmentVerdict` per bucket, worst first.

    Parameters
    ----------
    profile
        The reference profile the summaries were made with.
    summaries
        The window's :class:`~raywatch.stats.segments.Segments` of window summaries.
    drift_config
        As for :func:`~raywatch.drift.detect_drift`.
    performance
        The window's :class:`~raywatch.stats.segments.Segments` of performance accumulators
        (keyed like ``summaries``), or None.
    correct_across_segments
        Divide ``alpha`` by the number of buckets tested (see the module docstring).
    include_other
        Evaluate the ``__other__`` bucket too (a mixture of the values outside the top K).
    reference_columns
        Segment column → the column whose per-value references the profile holds (default:
        the same name), for segment columns read from a renamed field.
    """
    cfg = _config(drift_config)
    out: Dict[str, List[SegmentVerdict]] = {}
    buckets = {col: [b for b in summaries.items(col) if b[1] is not None and (include_other or b[0] != "__other__")]
               for col in summaries.columns}
    tested = sum(len(b) for b in buckets.values())
    if correct_across_segments and tested > 1:
        cfg = cfg.model_copy(update={"alpha": cfg.alpha / tested})
    for col, items in buckets.items():
        verdicts = []
        for label, summary, rows in items:
            perf = None
            if performance is not None and col in performance.columns:
                try:
                    acc = performance.get(col, label)
                except KeyError:
                    acc = None
                perf = acc.result() if acc is not None else None
            missed = summaries.missed_rows(col, label) if label != "__other__" else 0
            own = segment_profile(profile, (reference_columns or {}).get(col, col), label)
            report = detect_drift(own if own is not None else profile, summary, cfg)
            verdicts.append(SegmentVerdict(col, label, rows, missed, report, perf,
                                           "segment" if own is not None else "population"))
        out[col] = sorted(verdicts, key=SegmentVerdict.sort_key)
    return out
