"""How data drift is tested (see ``raywatch.drift``). Thresholds are per method; see
``raywatch/drift/methods.py`` for what each statistic means."""

from __future__ import annotations

from typing import Dict, Literal, Optional

from pydantic import Field, field_validator

from raywatch.config.base import Duration, StrictModel
from raywatch.config.estimate import (CorrelationTestConfig, EmbeddingTestConfig, EstimationTestConfig, OutlierTestConfig,
                                      ReconstructionTestConfig)

__all__ = ["DriftMethod", "ColumnDriftConfig", "DriftConfig"]


DriftMethod = Literal["ks", "wasserstein", "psi", "kl", "js", "hellinger", "chisquare", "ztest", "tvd"]


class ColumnDriftConfig(StrictModel):
    """Per-column override: method, threshold (α for p-value methods, the distance
    otherwise), effect-size floor, or ``enabled: false`` to skip the column."""

    method: Optional[DriftMethod] = None
    threshold: Optional[float] = Field(None, gt=0)
    min_effect: Optional[float] = Field(None, ge=0)
    enabled: bool = True


class DriftConfig(StrictModel):
    """How drift is tested. See ``raywatch.drift.detect_drift`` and the README's
    "Drift engine" section.

    * ``correction``: multiple-testing correction of p-values across columns; Bonferroni
      (default) bounds the chance of any false alarm in a stationary window by ``alpha``.
    * ``drift_share``: the dataset drifts when this share of tested columns drifts.
    * ``min_rows``: columns with fewer usable values in the window are not tested.
    * ``numerical_method`` / ``categorical_method``: replace the default rule for every
      column of that kind (``ks`` / ``ztest`` or ``chisquare`` by default).
    * ``thresholds``: per-method default thresholds, e.g. ``{psi: 0.25}``.
    * ``min_effect_numerical`` (Wasserstein distance in reference std units) and
      ``min_effect_categorical`` (total variation distance): the effect size a p-value
      method also needs before it flags drift, so that huge windows do not flag tiny,
      harmless shifts. 0 turns the floor off.
    * ``smoothing``: pseudo-count per bin for PSI, KL and chi-square expected counts.
    * ``quality_tolerance`` / ``quality_alpha``: a data-quality share is an issue when it
      exceeds the reference's rate by the tolerance and a binomial test at quality_alpha.
    """

    correction: Literal["bonferroni", "bh", "none"] = "bonferroni"
    alpha: float = Field(0.05, gt=0, lt=1)
    drift_share: float = Field(0.5, gt=0, le=1)
    min_rows: int = Field(30, ge=1)
    numerical_method: Optional[DriftMethod] = None
    categorical_method: Optional[DriftMethod] = None
    thresholds: Dict[DriftMethod, float] = Field(default_factory=dict)
    min_effect_numerical: float = Field(0.1, ge=0)
    min_effect_categorical: float = Field(0.05, ge=0)
    smoothing: float = Field(0.5, gt=0)
    quality_tolerance: float = Field(0.01, ge=0, le=1)
    quality_alpha: float = Field(0.001, gt=0, lt=1)
    columns: Dict[str, ColumnDriftConfig] = Field(default_factory=dict)
    # ---- issue 13: the profile's extension tests (raywatch.config.estimate), exact tests, false alarms in time
    exact_max_rows: int = Field(10_000, ge=0)  # raw columns up to this size are tested exactly (scipy's ks_2samp)
    estimation: EstimationTestConfig = Field(default_factory=EstimationTestConfig)
    correlation: CorrelationTestConfig = Field(default_factory=CorrelationTestConfig)
    reconstruction: ReconstructionTestConfig = Field(default_factory=ReconstructionTestConfig)
    embeddings: EmbeddingTestConfig = Field(default_factory=EmbeddingTestConfig)
    outliers: OutlierTestConfig = Field(default_factory=OutlierTestConfig)
    expected_run_time: Optional[Duration] = Field(None, gt=0)  # the stats actor's tests: alpha = evaluation_interval / this

    @field_validator("thresholds")
    @classmethod
    def _positive_thresholds(cls, v: Dict[str, float]) -> Dict[str, float]:
        for method, threshold in v.items():
            if not threshold > 0:
                raise ValueError(f"threshold for {method} must be positive, got {threshold!r}")
        return v
