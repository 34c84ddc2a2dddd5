"""Streaming drift detectors for scalar series, over river's implementations.

Window tests (:func:`raywatch.drift.detect_drift`) compare whole windows with a reference.
For a single series that arrives value by value — a latency, a prediction score, a loss,
or an error indicator (1 = the model was wrong) — a sequential detector reacts within the
window. One small interface wraps river's detectors:

* continuous series: ``adwin`` (ADaptive WINdowing), ``page_hinkley`` (cumulative mean
  deviation), ``kswin`` (Kolmogorov–Smirnov over a sliding window);
* binary error streams (0/1 only): ``ddm``, ``eddm``, ``hddm_a``, ``hddm_w`` — these
  also report ``warning_detected``.

``update(x)`` returns True exactly when drift is detected at this value (river 0.26's own
``update`` returns None; the flag is read from ``drift_detected`` afterwards). ``None`` and
NaN are skipped and counted in ``skipped``; a binary detector refuses values other than
0/1 with a ValueError.

>>> det = make_detector("page_hinkley", threshold=20.0)
>>> hits = [i for i, x in enumerate([0.0] * 200 + [5.0] * 50) if det.update(x)]
>>> hits[:1]
[204]
>>> det.name, det.n
('page_hinkley', 250)

References
----------
Bifet, A., Gavaldà, R. (2007). Learning from time-changing data with adaptive windowing.
Page, E. S. (1954). Continuous inspection schemes. Biometrika 41.
Raab, C., Heusinger, M., Schleif, F.-M. (2020). Reactive soft prototype computing for
concept drift streams (KSWIN). Gama, J. et al. (2004). Learning with drift detection (DDM).
Baena-García, M. et al. (2006). Early drift detection method (EDDM).
Frías-Blanco, I. et al. (2015). Online and non-parametric drift detection methods based on
Hoeffding's bounds (HDDM_A, HDDM_W).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, Tuple

__all__ = ["StreamingDetector", "make_detector", "DETECTORS", "BINARY_DETECTORS"]

log = logging.getLogger("raywatch.drift.streaming")


def _factories() -> Dict[str, Tuple[Callable[..., Any], bool]]:
    from river import drift
    from river.drift import binary

    return {
        "adwin": (drift.ADWIN, False),
        "page_hinkley": (drift.PageHinkley, False),
        "kswin": (drift.KSWIN, False),
        "ddm": (binary.DDM, True),
        "eddm": (binary.EDDM, True),
        "hddm_a": (binary.HDDMA, True),
        "hddm_w": (binary.HDDMW, True),
    }


DETECTORS = ("adwin", "page_hinkley", "kswin", "ddm", "eddm", "hddm_a", "hddm_w")
BINARY_DETECTORS = ("ddm", "eddm", "hddm_a", "hddm_w")


class StreamingDetector:
    """One river detector behind ``update(x) -> bool``, ``drift_detected``, ``reset()``.

    Parameters
    ----------
    name
        One of :data:`DETECTORS`.
    **params
        Passed to the river class (e.g. ``delta`` for ADWIN, ``threshold`` for
        PageHinkley, ``alpha``/``window_size`` for KSWIN, ``drift_threshold`` for DDM).
    """

    def __init__(self, name: str, **params: Any):
        if name not in DETECTORS:
            raise ValueError(f"unknown detector {name!r}; use one of {', '.join(DETECTORS)}")
        factory, binary = _factories()[name]
        try:
            self._detector = factory(**params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for detector {name!r}: {exc}") from None
        self.name = name
        self.params = dict(params)
        self.binary = binary
        self.n = 0  # values consumed
        self.skipped = 0  # None/NaN values ignored
        self.detections = 0  # drifts detected since creation or reset

    def update(self, x: Any) -> bool:
        """Feed one value; True when drift is detected at this value."""
        if x is None:
            self.skipped += 1
            return False
        try:
            v = float(x)
        except (TypeError, ValueError):
            raise TypeError(f"detector {self.name!r} takes numbers, got {type(x).__name__}") from None
        if math.isnan(v):
            self.skipped += 1
            return False
        if self.binary:
            if v not in (0.0, 1.0):
                raise ValueError(f"detector {self.name!r} takes 0/1 error indicators, got {x!r}")
            self._detector.update(bool(v))
        else:
            if math.isinf(v):
                raise ValueError(f"detector {self.name!r} takes finite numbers, got {x!r}")
            self._detector.update(v)
        self.n += 1
        detected = bool(self._detector.drift_detected)
        if detected:
            self.detections += 1
            log.debug("detector %s: drift at value %d", self.name, self.n)
        return detected

    @property
    def drift_detected(self) -> bool:
        return bool(self._detector.drift_detected)

    @property
    def warning_detected(self) -> bool:
        """The binary detectors' warning zone; always False for the others."""
        return bool(getattr(self._detector, "warning_detected", False))

    def reset(self) -> None:
        """Start over with the same parameters."""
        factory, _ = _factories()[self.name]
        self._detector = factory(**self.params)
        self.n = 0
        self.skipped = 0
        self.detections = 0

    def __repr__(self) -> str:
        return f"StreamingDetector({self.name!r}, n={self.n}, detections={self.detections})"


def make_detector(name: str, **params: Any) -> StreamingDetector:
    """A :class:`StreamingDetector` by name (see :data:`DETECTORS`)."""
    return StreamingDetector(name, **params)
