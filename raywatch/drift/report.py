"""The result of a drift check: per-column verdicts, data quality and the dataset verdict.

A :class:`DriftReport` is plain data; :meth:`DriftReport.to_dict` gives JSON-able dicts
(non-finite numbers become ``None``) and :meth:`DriftReport.to_json` a string.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from raywatch import series

__all__ = ["ColumnDrift", "ColumnQuality", "DriftReport"]


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _plain(result: Any) -> Any:
    if isinstance(result, dict):
        return {k: _plain(v) for k, v in result.items()}
    return result.to_dict() if hasattr(result, "to_dict") else asdict(result)


@dataclass
class ColumnDrift:
    """The drift verdict for one column.

    ``statistic`` is the method's statistic; ``p_value`` its raw p-value and
    ``p_value_adjusted`` after the correction across columns (``None`` for distance
    methods); ``threshold`` is α for p-value methods and the distance threshold otherwise.
    ``effect_size`` (normed Wasserstein or total variation) must reach ``effect_floor``
    for a p-value method to flag drift. ``exact`` is False when computed from bins, and
    ``statistic_bounds`` then brackets the raw-data statistic where known. ``tested`` is
    False when the column was skipped (``note`` says why).

    ``figures`` says what the statistic and p-value are (for the report):

    * ``"exact"`` — computed from every raw value (numerical columns held whole in both
      samples: equal to scipy's) or from exact counts (categorical and boolean columns);
    * ``"bound"`` — binned KS: the raw-data statistic lies in ``statistic_bounds`` and the
      p-value is never smaller than the raw-data one (conservative);
    * ``"approximate"`` — binned Wasserstein distance (within about 1.5 % of a standard
      deviation of the raw-data value for smooth data);
    * ``"binned"`` — a distance defined on the profile's bins (PSI, KL, JS, Hellinger of a
      numerical column).
    """

    name: str
    kind: str
    method: str
    statistic: Optional[float]
    p_value: Optional[float]
    p_value_adjusted: Optional[float]
    threshold: float
    drifted: bool
    effect_size: Optional[float] = None
    effect_floor: Optional[float] = None
    tested: bool = True
    exact: bool = True
    statistic_bounds: Optional[Tuple[float, float]] = None
    rows_reference: int = 0
    rows_current: int = 0
    note: str = ""
    figures: str = "exact"

    @property
    def score(self) -> Optional[float]:
        """The number exported as ``drift_score``: the statistic."""
        return self.statistic


@dataclass
class ColumnQuality:
    """Data-quality shares of one column in the window, each beside the reference's rate.

    ``missing_share`` (None/NaN or an absent column) and ``wrong_type_share`` are shares of
    rows; ``nonfinite_share`` (±inf) too; ``out_of_range_share`` is the share of finite values
    outside the reference's [min, max] (reference rate: 2/(n+1), the chance that a new
    value from the same distribution falls outside n reference values); and
    ``unseen_category_share`` the share of labels the reference never had (reference rate:
    the Good–Turing estimate, labels seen once / n). ``issues`` names the shares that
    exceed their reference rate by at least the tolerance and significantly (one-sided
    binomial test). ``outlier_share`` (beside ``outlier_share_reference``) is the share of
    finite values beyond the reference's robust fences, when the profile has them
    (:mod:`raywatch.drift.outliers`); ``None`` otherwise.
    """

    name: str
    kind: str
    rows: int
    missing_share: float
    missing_share_reference: float
    nonfinite_share: float
    nonfinite_share_reference: float
    wrong_type_share: float
    wrong_type_share_reference: float
    out_of_range_share: float
    out_of_range_share_reference: float
    unseen_category_share: float
    unseen_category_share_reference: float
    issues: List[str] = field(default_factory=list)
    outlier_share: Optional[float] = None
    outlier_share_reference: Optional[float] = None


@dataclass
class DriftReport:
    """Per-column drift and quality, and the dataset verdict.

    ``dataset_drift`` is True when ``drift_share`` (drifted columns / tested columns)
    reaches ``drift_share_threshold``. ``extensions`` holds the results of the profile's
    extension tests by section name (:mod:`raywatch.drift.extensions`: estimated performance,
    correlation change, PCA reconstruction, embeddings, outliers); ``multivariate_drift`` is
    True when the correlation, reconstruction or an embedding test flags the window.
    """

    columns: Dict[str, ColumnDrift]
    quality: Dict[str, ColumnQuality]
    dataset_drift: bool
    drift_share: float
    drift_share_threshold: float
    correction: str
    alpha: float
    rows_reference: int
    rows_current: int
    unknown_columns: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    extensions: Dict[str, Any] = field(default_factory=dict)

    @property
    def multivariate_drift(self) -> bool:
        for r in self.extensions.values():  # (a loop: evaluated for every rolling view, every cycle)
            if getattr(r, "drifted", False):
                return True
        return False

    @property
    def drifted_columns(self) -> List[str]:
        return [name for name, c in self.columns.items() if c.drifted]

    @property
    def tested_columns(self) -> List[str]:
        return [name for name, c in self.columns.items() if c.tested]

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-able dict of everything in the report."""
        return _clean(
            {
                series.DATASET_DRIFT.name: self.dataset_drift,
                "drift_share": self.drift_share,
                "drift_share_threshold": self.drift_share_threshold,
                "drifted_columns": self.drifted_columns,
                "tested_columns": len(self.tested_columns),
                "correction": self.correction,
                "alpha": self.alpha,
                "rows_reference": self.rows_reference,
                "rows_current": self.rows_current,
                "unknown_columns": list(self.unknown_columns),
                "notes": list(self.notes),
                "columns": {name: asdict(c) for name, c in self.columns.items()},
                "quality": {name: asdict(q) for name, q in self.quality.items()},
                series.MULTIVARIATE_DRIFT.name: self.multivariate_drift,
                "extensions": {name: _plain(r) for name, r in self.extensions.items()},
            }
        )

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        return (
            f"DriftReport(dataset_drift={self.dataset_drift}, drifted={self.drifted_columns}, "
            f"drift_share={self.drift_share:.3f}, rows_current={self.rows_current})"
        )
