"""raywatch.drift: drift tests, data quality, streaming detectors, performance metrics.

:func:`detect_drift` compares a window with a reference profile and returns a
:class:`DriftReport`; :mod:`raywatch.drift.streaming` holds the sequential detectors and
:mod:`raywatch.drift.performance` the mergeable performance metrics.
"""

from raywatch.drift.detect import detect_drift
from raywatch.drift.methods import METHODS
from raywatch.drift.report import ColumnDrift, ColumnQuality, DriftReport

__all__ = ["METHODS", "ColumnDrift", "ColumnQuality", "DriftReport", "detect_drift"]
