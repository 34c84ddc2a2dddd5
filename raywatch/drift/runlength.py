"""False alarms stated in time: thresholds from an expected run time between false alarms.

An on-call engineer understands "one false page a month", not "α = 0.05 per window" or
"Page-Hinkley threshold 50". This module turns an *expected run time* (ERT) between false
alarms on stationary data — ``30d`` — into the settings that give it.

Window tests, evaluated every ``interval`` seconds (the rolling-window drift rules)
    Each evaluation of a valid test flags a stationary window with probability at most α, so
    false alarms come at a long-run rate of at most ``α / interval``: the mean time between
    them is at least ``interval / α``. :func:`alpha_for_run_length` gives
    ``α = interval / run_length`` (30 days at a 60 s interval: α = 2.3·10⁻⁵). This needs no
    simulation; the binned KS p-values are conservative, so the real ERT is longer, and a
    ``for:`` duration on the rule lengthens it further. Correlated evaluations (overlapping
    rolling views) only bunch false alarms together; their rate stays the same.

Streaming detectors (river's, :mod:`raywatch.drift.streaming`)
    Their thresholds have no closed-form false-alarm rate, so :func:`calibrate_detector`
    finds one by simulation on the reference, as alibi-detect configures its online
    detectors: streams are bootstrapped from the reference values (one update per
    ``interval``), the detector runs over them with its reset-after-alarm behaviour, and the
    ERT is measured as updates per alarm. The sensitivity parameter (Page-Hinkley's
    ``threshold``, ADWIN's ``delta``, DDM's ``drift_threshold``, EDDM's ``beta``, HDDM's
    ``drift_confidence``) is moved until the measured ERT, less one standard error
    (``ERT / √alarms``), reaches the target, so the result errs long. Beyond what the
    simulation budget can measure (a target over ``budget / 20`` updates), the parameter comes
    from a line through the measured points of ``log ERT`` against the parameter (``log h``
    for Page-Hinkley, ``log 1/δ`` for ADWIN and HDDM, ``k²`` for DDM), aimed 30 % above the
    target, and the result says so (``extrapolated``). ``log ERT`` is convex there
    (Page-Hinkley's run length grows like ``h²`` while ``h`` is small against ``σ²/δ``, faster
    beyond), so the line errs long too. The bootstrap assumes independent
    values: autocorrelated series (latency minute to minute) alarm more often than simulated;
    calibrate on the series' own recent values, or on batch means, which are closer to
    independent. KSWIN (200 µs an update, a scipy KS test each time) is not supported.

>>> import numpy as np
>>> alpha_for_run_length(30 * 86400, 60)            # 30 days, evaluated every minute
2.3148148148148147e-05
>>> describe_run_length(run_length_of_alpha(0.05, 60))
'one false alarm per 20 minutes'
>>> reference = np.random.default_rng(0).normal(size=5000)
>>> cal = calibrate_detector("page_hinkley", reference, run_length=2000, interval=1.0, budget=200_000, seed=1)
>>> cal.parameter, cal.measured >= 2000, cal.extrapolated
('threshold', True, False)

References
----------
Ross, G. J., Adams, N. M. (2012). Two nonparametric control charts for detecting arbitrary
distribution changes (ERT calibration by simulation). Cobb, O., Van Looveren, A. (2022).
Context-aware drift detection; alibi-detect's online detectors' ``ert``. Page, E. S. (1954).
Continuous inspection schemes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from raywatch.drift.streaming import BINARY_DETECTORS, DETECTORS, _factories

__all__ = [
    "alpha_for_run_length", "run_length_of_alpha", "describe_run_length", "RunLengthCalibration",
    "calibrate_detector", "measure_run_length", "KNOBS",
]

# detector -> (parameter, transform to x where log ERT is about linear, step in x, start when unset)
KNOBS: Dict[str, Tuple[str, str, float]] = {
    "page_hinkley": ("threshold", "log", 0.3),
    "adwin": ("delta", "neglog", 1.5),
    "ddm": ("drift_threshold", "square", 1.5),
    "eddm": ("beta", "neglog", 0.15),
    "hddm_a": ("drift_confidence", "neglog", 1.5),
    "hddm_w": ("drift_confidence", "neglog", 1.5),
}
_DEFAULTS = {"page_hinkley": 50.0, "adwin": 0.002, "ddm": 3.0, "eddm": 0.9, "hddm_a": 0.001, "hddm_w": 0.001}
MIN_ALARMS = 20  # a measured ERT needs this many alarms (relative error ~ 1/√20)
VERIFY_ALARMS = 50  # the final check simulates about this many target run lengths
AIM = 1.3  # extrapolated parameters aim this far above the target


def alpha_for_run_length(run_length: float, interval: float) -> float:
    """The per-evaluation level α of a window test evaluated every ``interval`` seconds whose
    false alarms come at most once per ``run_length`` seconds on average."""
    if not (run_length > 0 and interval > 0):
        raise ValueError("run_length and interval must be positive durations")
    return min(1.0, float(interval) / float(run_length))


def run_length_of_alpha(alpha: float, interval: float) -> float:
    """The least mean time between false alarms (seconds) of a test at level ``alpha``
    evaluated every ``interval`` seconds."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    return float(interval) / float(alpha)


def describe_run_length(seconds: float) -> str:
    """``'one false alarm per 30 days'``: a run length in words, for reports and docs."""
    for unit, size in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            value = seconds / size
            text = f"{value:.0f}" if value >= 10 or value == round(value) else f"{value:.1f}"
            return f"one false alarm per {text} {unit}{'' if text == '1' else 's'}"
    return ""  # pragma: no cover


def _to_x(kind: str, value: float) -> float:
    return {"log": math.log, "neglog": lambda v: -math.log(v), "square": lambda v: v * v}[kind](value)


def _from_x(kind: str, x: float) -> float:
    return {"log": math.exp, "neglog": lambda v: math.exp(-v), "square": math.sqrt}[kind](x)


def measure_run_length(
    name: str, params: Mapping[str, Any], reference: np.ndarray, updates: int, *, streams: int = 8,
    seed: Optional[int] = 0,
) -> Tuple[int, int]:
    """``(alarms, updates)`` of detector ``name`` run over ``streams`` independent streams
    bootstrapped from ``reference`` (``updates`` values in all), resetting as it does after
    each alarm. The ERT estimate is ``updates / alarms``."""
    factory, binary = _factories()[name]
    rng = np.random.default_rng(seed)
    per = max(1, int(updates) // max(1, int(streams)))
    alarms = 0
    ref = np.asarray(reference, dtype=np.float64)
    for _ in range(max(1, int(streams))):
        det = factory(**dict(params))
        values = rng.choice(ref, size=per)
        for v in (values.astype(bool).tolist() if binary else values.tolist()):
            det.update(v)
            if det.drift_detected:
                alarms += 1
    return alarms, per * max(1, int(streams))


@dataclass
class RunLengthCalibration:
    """The parameter that gives a detector the target run length, and how it was found.

    ``params`` is what :func:`raywatch.drift.streaming.make_detector` takes; ``target`` and
    ``measured`` are in updates (``measured`` is None when extrapolated beyond what the budget
    could measure, and the updates simulated, a lower bound, when the check saw no alarm);
    ``points`` lists ``(value, measured ERT)`` of the simulation.
    """

    detector: str
    parameter: str
    value: float
    params: Dict[str, Any]
    target: float
    interval: float
    measured: Optional[float]
    extrapolated: bool
    updates_simulated: int
    points: List[Tuple[float, float]] = field(default_factory=list)

    @property
    def run_length_seconds(self) -> float:
        return (self.measured if self.measured is not None else AIM * self.target) * self.interval

    def describe(self) -> str:
        return describe_run_length(self.target * self.interval)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def calibrate_detector(
    name: str,
    reference: Any,
    run_length: float,
    interval: float = 1.0,
    *,
    params: Optional[Mapping[str, Any]] = None,
    budget: int = 1_000_000,
    streams: int = 8,
    seed: Optional[int] = 0,
) -> RunLengthCalibration:
    """Find the sensitivity parameter of detector ``name`` that gives, on streams bootstrapped
    from ``reference``, an expected run time between false alarms of at least ``run_length``
    seconds when it takes one value every ``interval`` seconds.

    Parameters
    ----------
    name
        A detector of :data:`raywatch.drift.streaming.DETECTORS` other than ``kswin``.
    reference
        Stationary values of the series the detector will watch (0/1 error indicators for the
        binary detectors; a probability ``p`` stands for Bernoulli(p) values).
    run_length, interval
        The target ERT and the time between updates, in seconds.
    params
        The detector's other parameters (kept as given).
    budget
        Updates the whole calibration may simulate (about a second per million for
        Page-Hinkley, ADWIN and DDM, three for HDDM).
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; use one of {', '.join(DETECTORS)}")
    if name not in KNOBS:
        raise ValueError(f"detector {name!r} cannot be calibrated by simulation (one scipy test an update); "
                         "use adwin or page_hinkley")
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if name in BINARY_DETECTORS and ref.size == 1 and 0 < ref[0] < 1:
        ref = (np.random.default_rng(seed).random(100_000) < ref[0]).astype(np.float64)
    ref = ref[np.isfinite(ref)]
    if ref.size < 2:
        raise ValueError("the reference needs at least two finite values")
    if name in BINARY_DETECTORS and np.any((ref != 0) & (ref != 1)):
        raise ValueError(f"detector {name!r} takes 0/1 error indicators")
    target = float(run_length) / float(interval)
    if target < 10:
        raise ValueError(f"a run length of {target:.3g} updates is too short to calibrate")
    param, kind, step = KNOBS[name]
    base = dict(params or {})
    start = base.pop(param, None)
    if start is None:
        start = _DEFAULTS[name] * (float(np.std(ref)) or 1.0) if name == "page_hinkley" else _DEFAULTS[name]
    chunk = max(int(budget) // 12, 100)
    spent = 0
    points: List[Tuple[float, float, int]] = []  # (x, log ERT, alarms) with a few alarms at least
    seen: List[Tuple[float, float]] = []
    x = _to_x(kind, float(start))
    rng = np.random.default_rng(seed)
    move = 2 * step if kind == "square" else step

    def measure(x: float, n: int) -> Tuple[int, int]:
        nonlocal spent
        value = _from_x(kind, x)
        a, u = measure_run_length(name, {**base, param: value}, ref, n, streams=streams,
                                  seed=int(rng.integers(2**31)))
        spent += u
        seen.append((value, u / a if a else math.inf))
        return a, u

    # coarse walk: up while the run length is short of the target, down while the start is too
    # quiet to count its alarms; a handful of alarms is enough to place a point
    for _ in range(40):
        if spent + chunk > budget:
            break
        a, u = measure(x, chunk)
        if a >= 5:
            points.append((x, math.log(u / a), a))
            if u / a >= target:
                break
            x += move
        elif not points and (kind != "square" or x - move > 0.25):
            x -= move
        elif points and spent + 4 * chunk <= budget:
            chunk *= 4  # longer runs: simulate more to count their alarms
        else:
            break
    if not points:
        value = _from_x(kind, x + move)
        return RunLengthCalibration(name, param, value, {**base, param: value}, target, float(interval), None, True,
                                    spent, seen)
    xs, ys, ws = (np.array(v, dtype=np.float64) for v in zip(*points))
    # a line through all the points, weighted by their alarms: log ERT is convex in x for these
    # detectors (Page-Hinkley's run length grows like h² while h is small against σ²/δ, then
    # faster), so the line's slope is at most the curve's at the far end, and extending it
    # overshoots the parameter: the long side of the target
    if len(points) >= 2 and np.ptp(xs) > 0:
        slope, icept = np.polyfit(xs, ys, 1, w=np.sqrt(ws))
    else:
        slope, icept = 1.0 / move, ys[-1] - xs[-1] / move
    slope = max(float(slope), 1e-3)
    measurable = target * MIN_ALARMS <= budget - spent
    x_star = (math.log(target * AIM) - icept) / slope
    x_star = max(x_star, float(xs[ys < math.log(target)].max()) if np.any(ys < math.log(target)) else x_star)
    measured: Optional[float] = None
    if measurable:  # verify, and walk up until the run length's lower 1-sigma bound reaches the target
        for _ in range(8):
            n = int(min(budget - spent, target * VERIFY_ALARMS))
            if n < target * MIN_ALARMS:
                break
            a, u = measure(x_star, n)
            measured = u / a if a else float(u)  # no alarm in u updates: at least u
            if a <= 4 or measured * (1.0 - 1.0 / math.sqrt(a)) >= target:  # few alarms: far above the target
                break
            x_star += max(move / 8, (math.log(AIM * target) - math.log(measured)) / slope)
            measured = None
    value = _from_x(kind, x_star)
    return RunLengthCalibration(name, param, value, {**base, param: value}, target, float(interval), measured,
                                measured is None, spent, seen)
