"""Settings of issue 13: how a profile's extensions are fitted (label-free performance
estimation, correlations, PCA reconstruction, outlier fences, embeddings), how the stats actor
tests them per window, and false-alarm rates stated in time.

* :class:`ProfileConfig` (``profile_options:`` of a monitor YAML, read by ``raywatch profile
  build --config``) maps one to one onto ``Profile.fit(..., performance=, correlation=, pca=,
  outliers=, vectors=)`` (:meth:`ProfileConfig.fit_options`).
* The ``*TestConfig`` models are fields of :class:`~raywatch.config.detect.DriftConfig`
  (``drift.estimation``, ``drift.correlation``, ``drift.reconstruction``, ``drift.embeddings``,
  ``drift.outliers``); ``raywatch.drift.extensions`` reads them by these names.
* ``drift.expected_run_time`` and ``detectors.<name>.expected_run_time`` (declared beside
  those models) turn "one false alarm per 30 days" into the tests' level and the streaming
  detectors' thresholds (``raywatch.drift.runlength``).

>>> ProfileConfig(performance={"target": "label", "scores": "score"}, correlation=True).fit_options()["performance"]
{'target': 'label', 'scores': 'score', 'prediction': None, 'positive': 1, 'threshold': 0.5, 'calibration': 'auto'}
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import Field

from raywatch.config.base import StrictModel

__all__ = [
    "CalibrationMethod", "PerformanceEstimationConfig", "PCAConfig", "OutlierFencesConfig", "VectorFeatureConfig",
    "ProfileConfig", "EstimationTestConfig", "CorrelationTestConfig", "ReconstructionTestConfig",
    "EmbeddingTestConfig", "OutlierTestConfig", "UNCALIBRATED_DETECTORS",
]

CalibrationMethod = Literal["auto", "identity", "platt", "isotonic"]

UNCALIBRATED_DETECTORS = ("kswin",)
"""Streaming detectors whose threshold cannot be calibrated from an expected run time (one scipy
KS test per update is too slow to simulate)."""


# --------------------------------------------------------------------------- profile fitting


class PerformanceEstimationConfig(StrictModel):
    """Label-free performance estimation (CBPE) for a classifier, fitted on the reference's labels.

    * ``target``: the reference's label column (used to calibrate, never profiled; production
      rows don't have it).
    * ``scores``: binary: the column with the probability of ``positive``; multiclass:
      ``{class label: column}``, one per class.
    * ``prediction``: the predicted-label column (None: ``score >= threshold`` for binary
      models, the highest score for multiclass ones).
    * ``calibration``: ``auto`` picks isotonic, Platt or the scores as they are by 5-fold
      cross-validated expected calibration error (``raywatch.stats.calibration``).

    The estimate assumes no concept drift (``P(label | score)`` as in the reference); the
    ``estimation_disagreement`` series says when realized performance left the estimate's band.
    """

    target: str
    scores: Union[str, Dict[str, str]]
    prediction: Optional[str] = None
    positive: Any = 1
    threshold: float = Field(0.5, gt=0, lt=1)
    calibration: CalibrationMethod = "auto"


class PCAConfig(StrictModel):
    """Multivariate drift by PCA reconstruction error (NannyML's). ``columns``: numerical
    columns (None: all); ``variance``: the share of standardized variance the kept components
    explain."""

    columns: Optional[List[str]] = None
    variance: float = Field(0.65, gt=0, le=1)


class OutlierFencesConfig(StrictModel):
    """Per numerical column, robust fences: Tukey's IQR fences (k = 1.5) or MAD fences (k = 3.5)."""

    columns: Optional[List[str]] = None
    method: Literal["iqr", "mad"] = "iqr"
    k: Optional[float] = Field(None, gt=0)  # None: 1.5 for iqr, 3.5 for mad


class VectorFeatureConfig(StrictModel):
    """An embedding column: ``dims`` seeded random-projection directions (bounded memory)."""

    dims: int = Field(16, ge=1, le=64)


class ProfileConfig(StrictModel):
    """The extensions a reference profile is fitted with; each adds a section to every window
    summary. All off by default: a plain profile (and its bytes) is unchanged."""

    performance: Optional[PerformanceEstimationConfig] = None
    correlation: Union[bool, List[str]] = False  # True: every numerical column (at most 64)
    pca: Union[bool, PCAConfig] = False
    outliers: Union[bool, OutlierFencesConfig] = False
    vectors: Dict[str, VectorFeatureConfig] = Field(default_factory=dict)

    def fit_options(self) -> Dict[str, Any]:
        """The keyword arguments of ``Profile.fit`` these settings stand for."""
        def opt(v: Any) -> Any:
            return v if isinstance(v, bool) else v.model_dump(exclude_none=True)

        return {
            "performance": self.performance.model_dump() if self.performance is not None else None,
            "correlation": self.correlation,
            "pca": opt(self.pca),
            "outliers": opt(self.outliers),
            "vectors": {n: v.model_dump() for n, v in self.vectors.items()},
        }


# --------------------------------------------------------------------------- per-window tests


class EstimationTestConfig(StrictModel):
    """Estimated performance per window: ``sigmas`` is the band's half-width in sampling errors
    (NannyML's 3); the disagreement between realized and estimated uses the same, once the
    rolling view holds ``min_labels`` joined labels."""

    enabled: bool = True
    sigmas: float = Field(3.0, gt=0)
    min_labels: int = Field(30, ge=1)


class CorrelationTestConfig(StrictModel):
    """Correlation change (Fisher z of normal-score correlations, null variance from the
    reference's fourth moments): a pair drifts when its p-value, corrected across pairs, is below
    ``alpha`` AND its correlation moved by at least ``min_change``. ``alpha`` None: ``drift.alpha``
    (or the level from ``drift.expected_run_time``)."""

    enabled: bool = True
    alpha: Optional[float] = Field(None, gt=0, lt=1)
    min_change: float = Field(0.1, gt=0, le=2)
    min_rows: int = Field(30, ge=4)
    correction: Optional[Literal["bonferroni", "bh", "none"]] = None  # None: drift.correction
    top: int = Field(20, ge=0)  # pairs kept for the report, largest change first


class ReconstructionTestConfig(StrictModel):
    """PCA reconstruction: drift when the window's mean error leaves μ ± sigmas·σ·√(1/n + 1/N).
    ``sigmas`` None: 3, or the two-sided normal quantile of ``drift.expected_run_time``'s level."""

    enabled: bool = True
    sigmas: Optional[float] = Field(None, gt=0)
    min_rows: int = Field(30, ge=1)


class EmbeddingTestConfig(StrictModel):
    """Vector features: Hotelling's T² on the projection and KS on the norms (Bonferroni ×2);
    drift when a corrected p-value < alpha and that test's effect >= min_effect. ``alpha`` None:
    ``drift.alpha`` (or the level from ``drift.expected_run_time``)."""

    enabled: bool = True
    alpha: Optional[float] = Field(None, gt=0, lt=1)
    min_effect: float = Field(0.1, ge=0)
    min_rows: int = Field(30, ge=1)


class OutlierTestConfig(StrictModel):
    """Outlier share per numerical column: an issue when it exceeds the reference's own rate by
    ``tolerance`` and a one-sided binomial test at ``alpha`` (None: ``drift.quality_tolerance`` /
    ``drift.quality_alpha``)."""

    enabled: bool = True
    tolerance: Optional[float] = Field(None, ge=0, le=1)
    alpha: Optional[float] = Field(None, gt=0, lt=1)


def check_run_times(drift: Any, windows: Any) -> None:
    """``drift.expected_run_time`` must span at least two evaluations (else every evaluation
    would be allowed to alarm): ValueError naming the field otherwise."""
    ert = getattr(drift, "expected_run_time", None)
    if ert is not None and ert < 2 * windows.evaluation_interval:
        raise ValueError(f"drift.expected_run_time ({ert:g} s) must be at least twice windows.evaluation_interval "
                         f"({windows.evaluation_interval:g} s): the tests run once per evaluation")
