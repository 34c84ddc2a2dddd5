"""Evaluation: close due windows, compute the rolling view, drift, quality and performance.

:meth:`Evaluator.evaluate_model` closes the windows of a model whose end (+ ``grace``) has
passed — handing each result to ``on_closed`` (the history) — and computes the rolling
view (the last ``windows.rolling`` windows, the open one included): traffic figures,
latency percentiles, drift against the reference profile, data quality, performance from
joined ground truth, resources of the live replicas and the streaming detectors' state.
The result is the model's ``view``; its series (:func:`~raywatch.aggregate.model_series.model_series`)
go to the alert rules and the exposition.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from raywatch import series
from raywatch.aggregate import estimate_eval
from raywatch.aggregate.detectors import NAMES
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.model_series import model_series
from raywatch.aggregate.segment_eval import evaluate_segments_of
from raywatch.aggregate.windows import Window, aggregate_resources
from raywatch.config import WindowConfig
from raywatch.drift.report import ColumnDrift, ColumnQuality, DriftReport

__all__ = ["Evaluator", "close_delay", "close_spread", "rolling_horizon", "column_notes", "untested", "UNTESTED_REASONS", "NO_PROFILE"]

_RESOURCE_FIELDS = tuple(m.name for m in series.MODEL_RESOURCES) + (series.GPU_UTILIZATION.name,)
_QUALITY_FIELDS = tuple(m.name for m in series.QUALITY_SHARES) + ("wrong_type_share",)


NO_PROFILE = "no reference profile"
"""A model's ``drift_note`` when it has no reference profile (nothing to test against)."""
NO_ROWS = "no feature rows in this period (no request with features, or none sampled)"
"""A model's ``drift_note`` when its replicas shipped no feature rows."""


SPREAD_ABOVE = 64
"""Models on a shard beyond which ``windows.close_spread`` (auto) spreads the closing of windows."""


def close_spread(wc: WindowConfig, models: int) -> float:
    """Seconds over which the closing of windows is spread on a shard of ``models`` models
    (``windows.close_spread``; see :class:`~raywatch.config.WindowConfig`)."""
    if wc.close_spread is not None:
        return float(wc.close_spread)
    return max(0.0, wc.length - wc.evaluation_interval) if models > SPREAD_ABOVE else 0.0


def close_delay(phase: float, spread: float, interval: float) -> float:
    """How long after ``end + grace`` a model of ``phase`` (in [0, 1)) closes its windows: a
    whole number of evaluation intervals up to ``spread``, so that the models' closes fall
    evenly on ``spread // interval + 1`` cycles."""
    slots = int(spread // interval) + 1 if spread >= interval else 1
    return min(slots - 1, int(phase * slots)) * interval


def rolling_horizon(now: float, wc: WindowConfig) -> float:
    """Start of the oldest window in the rolling view at ``now``."""
    return math.floor(now / wc.length) * wc.length - (wc.rolling - 1) * wc.length


def _resource_fields(res: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: res.get(k) for k in _RESOURCE_FIELDS}


UNTESTED_REASONS = ("disabled", "redacted", "no_reference_values", "no_rows", "wrong_type", "missing", "too_few_rows")
"""Why a column of the profile was not tested, in the order they are checked: switched off in
``drift.columns``; removed by a ``capture.redact`` rule; no usable value in the reference; no
row in the window; most unusable values of the wrong type; most of them missing; else too few
usable values for ``drift.min_rows``."""


def column_notes(windows: Sequence[Any]) -> Tuple[Dict[str, str], Dict[str, Dict[str, int]]]:
    """What the replicas said about columns in ``windows``: ``redacted`` (column → the
    ``capture.redact`` pattern that removed it) and ``wrong_types`` (column → observed type
    name → count), the optional fields of a replica batch that the window aggregates carry.

    >>> class W: pass
    >>> a, b = W(), W()
    >>> a.redacted, a.wrong_types = {"card_present": "card_*"}, {"zip": {"str": 3}}
    >>> b.wrong_types = {"zip": {"str": 2, "float": 1}}
    >>> column_notes([a, b])
    ({'card_present': 'card_*'}, {'zip': {'str': 5, 'float': 1}})
    """
    redacted: Dict[str, str] = {}
    wrong: Dict[str, Dict[str, int]] = {}
    for w in windows:
        for col, pattern in (getattr(w, "redacted", None) or {}).items():
            redacted[str(col)] = str(pattern)
        for col, types in (getattr(w, "wrong_types", None) or {}).items():
            dst = wrong.setdefault(str(col), {})
            for name, n in (types or {}).items():
                dst[str(name)] = dst.get(str(name), 0) + int(n)
    return redacted, wrong


def expected_type(kind: str, families: Any = ()) -> str:
    """What values a column of ``kind`` takes, for people.

    >>> expected_type("numerical"), expected_type("categorical", {"number"}), expected_type("categorical", {"str"})
    ('a number', 'a number (its categories are numbers)', 'a string')
    """
    if kind == "numerical":
        return "a number"
    if kind == "boolean":
        return "true or false"
    fams = sorted(families or ())
    if fams == ["number"]:
        return "a number (its categories are numbers)"
    if fams == ["bool"]:
        return "true or false"
    if fams == ["str"] or not fams:
        return "a string"
    return " or ".join({"str": "a string", "number": "a number", "bool": "a boolean"}.get(f, f) for f in fams)


def _count(share: Any, rows: int) -> int:
    return int(round(float(share or 0.0) * rows))


def untested(c: ColumnDrift, q: Optional[ColumnQuality], *, kind: str, families: Any, min_rows: int,
             redacted: Mapping[str, str], wrong_types: Mapping[str, Mapping[str, int]]) -> Dict[str, Any]:
    """Why the column ``c`` was not tested: ``reason`` (one of :data:`UNTESTED_REASONS`) and
    ``why`` (a sentence), with the counts and types it rests on.

    >>> c = ColumnDrift("zip", "categorical", "chisquare", None, None, None, 0.05, False, tested=False,
    ...                 rows_reference=3000, rows_current=0)
    >>> q = ColumnQuality("zip", "categorical", 40, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    >>> untested(c, q, kind="categorical", families={"number"}, min_rows=30, redacted={},
    ...          wrong_types={"zip": {"str": 40}})["why"]
    'wrong type: got str in 40 of 40 rows, expected a number (its categories are numbers)'
    """
    rows = int(q.rows) if q is not None else 0
    usable = int(c.rows_current)
    missing = _count(q.missing_share, rows) if q is not None else 0
    wrong = _count(q.wrong_type_share, rows) if q is not None else 0
    out: Dict[str, Any] = {"rows": rows, "usable": usable}
    few = f"{usable} usable value{'s' if usable != 1 else ''}, fewer than drift.min_rows={min_rows}"
    if c.note == "disabled in the drift config":
        out.update(reason="disabled", why=f"disabled in drift.columns.{c.name}")
    elif c.name in redacted:
        out.update(reason="redacted", redacted_by=redacted[c.name],
                   why=f"redacted by the capture.redact rule {redacted[c.name]!r}: raywatch never sees it")
    elif c.rows_reference == 0:
        out.update(reason="no_reference_values", why="the reference profile has no usable value of it")
    elif rows == 0:
        out.update(reason="no_rows", why="no row in this period")
    elif wrong and wrong >= missing:
        observed = dict(wrong_types.get(c.name) or {})
        expected = expected_type(kind, families)
        got = ", ".join(f"{t}" for t, _ in sorted(observed.items(), key=lambda kv: -kv[1])) if observed else "another type"
        out.update(reason="wrong_type", observed_types=observed, expected_type=expected,
                   why=f"wrong type: got {got} in {wrong} of {rows} rows, expected {expected}")
        if usable:
            out["why"] += f" ({few})"
    elif missing:
        out.update(reason="missing", why=f"missing in {missing} of {rows} rows" + (f" ({few})" if usable else ""))
    else:
        out.update(reason="too_few_rows", why=f"too few rows: {few}")
    return out


def _drift_fields(report: DriftReport, profile: Any = None, min_rows: int = 30,
                  parts: Sequence[Any] = ()) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Per-feature drift and dataset-level fields from a DriftReport. A column that was not
    tested keeps its entry, with ``tested: False`` and why (:func:`untested`), read from the
    report and from what the replicas said about the windows ``parts`` (:func:`column_notes`)."""
    redacted, wrong_types = column_notes(parts)
    specs = getattr(profile, "specs", None) or {}
    cols = {}
    for name, c in report.columns.items():
        entry = {"method": c.method, "statistic": c.statistic, "p_value": c.p_value,
                 "p_value_adjusted": c.p_value_adjusted, "threshold": c.threshold, "drifted": bool(c.drifted)}
        if not c.tested:  # a tested column's entry has no "tested" key (readers default to True)
            entry["tested"] = False
            spec = specs.get(name)
            entry.update(untested(c, report.quality.get(name), kind=c.kind, families=getattr(spec, "families", ()),
                                  min_rows=min_rows, redacted=redacted, wrong_types=wrong_types))
        cols[name] = entry
    quality = {}
    for name, q in report.quality.items():
        entry = {k: getattr(q, k) for k in _QUALITY_FIELDS}  # the fields of ColumnQuality
        entry["issues"] = list(q.issues or [])
        share = q.outlier_share  # the outlier extension's share beside the reference's (issue 13)
        if share is not None:
            estimate_eval.outlier_fields(entry, share, q.outlier_share_reference)
        if name in wrong_types:
            entry["wrong_types"] = dict(wrong_types[name])
        quality[name] = entry
    extra = {
        series.DATASET_DRIFT.name: bool(report.dataset_drift),
        series.DRIFTED_FEATURES_SHARE.name: report.drift_share,
        "quality": quality,
    }
    return cols, extra


_UNSET: Any = object()  # window_result: no report given (made there)
PHASE_MODELS = 16  # models evaluated together, phase by phase (Evaluator.evaluate_models)


class Evaluator:
    """Closes windows and computes views (see the module docstring)."""

    def __init__(self, windows: WindowConfig, replica_ttl: float, failures: Failures, *,
                 on_closed: Callable[[ModelState, Window, Dict[str, Any]], None]):
        self.wc = windows
        self.replica_ttl = replica_ttl
        self.failures = failures
        self.on_closed = on_closed
        self.spread = 0.0  # seconds: see close_spread (the core sets it every cycle)

    def close_windows(self, ms: ModelState, now: float) -> List[Dict[str, Any]]:
        """Close the windows of ``ms`` due at ``now`` (``end + grace``, plus the model's phase
        of :attr:`spread`) into its history; their results."""
        results = []
        due = now - self.wc.grace - close_delay(ms.close_phase, self.spread, self.wc.evaluation_interval)
        for start in sorted(ms.open):
            w = ms.open[start]
            if w.end > due:
                break
            del ms.open[start]
            ms.closed_until = max(ms.closed_until, w.end)
            try:
                res = self.window_result(ms, w, seconds=w.end - w.start)
                results.append(res)
                self.on_closed(ms, w, res)
            except Exception as exc:
                self.failures.fail("window.close", exc)
            ms.closed.append(w)
        horizon = rolling_horizon(now, self.wc)
        while ms.closed and ms.closed[0].start < horizon:
            ms.closed.popleft()
        return results

    def _drift(self, ms: ModelState, w: Window, *, extensions: bool = True) -> Optional[DriftReport]:
        if ms.profile is None or w.summary is None or w.rows == 0:
            return None
        return estimate_eval.detect(ms, w.summary, extensions=extensions)  # drift.expected_run_time applied (issue 13)

    def window_result(self, ms: ModelState, w: Window, seconds: float, parts: Optional[Sequence[Window]] = None,
                      report: Any = _UNSET) -> Dict[str, Any]:
        """The figures, drift, quality and performance of ``w`` (made of the windows ``parts``:
        what the replicas said about their columns is read from them; default ``[w]``);
        ``report``: its drift report when made already (None: no report)."""
        res = w.figures(seconds)
        if parts is None:  # a closed window's own figures; the rolling view's are the live replicas' (evaluate_model)
            res.update(_resource_fields(aggregate_resources(w.resources)))
        res[series.DATASET_DRIFT.name] = False
        res[series.DRIFTED_FEATURES_SHARE.name] = None
        res["quality"] = {}
        drift: Dict[str, Any] = {}
        if report is _UNSET:
            report = self._tested(ms, w)
        if report is not None:
            drift, extra = _drift_fields(report, ms.profile, ms.config.drift.min_rows, [w] if parts is None else parts)
            res.update(extra)
        elif ms.profile is None:
            res["drift_note"] = NO_PROFILE
        elif w.rows == 0:
            res["drift_note"] = NO_ROWS
        res["drift"] = drift
        perf: Dict[str, Any] = {}
        if w.perf is not None:
            try:
                perf = dict(w.perf.result())
            except Exception as exc:
                self.failures.fail("performance", exc)
        res["performance"] = perf
        evaluate_segments_of(ms, w, res, detail=parts is not None, fail=self.failures.fail)  # issue 12
        try:  # the profile's extensions: estimated performance, multivariate drift, false alarms in time (issue 13)
            # the rolling view is evaluated every cycle and read far less: its results' plain data is made on read
            estimate_eval.extension_fields(ms, report, res, defer=parts is not None)
        except Exception as exc:
            self.failures.fail("extensions", exc)
        return res

    def rolling_parts(self, ms: ModelState, now: float) -> List[Window]:
        """The windows of the rolling view at ``now``: closed ones, then the open ones."""
        horizon = rolling_horizon(now, self.wc)
        return [w for w in ms.closed if w.start >= horizon] + [ms.open[s] for s in sorted(ms.open) if s >= horizon]

    def rolling(self, ms: ModelState, now: float) -> Tuple[Window, float]:
        """The rolling view at ``now`` and the seconds it covers."""
        wc = self.wc
        horizon = rolling_horizon(now, wc)
        done = tuple(w for w in ms.closed if w.start >= horizon)
        ws = list(done[-1:]) + [ms.open[s] for s in sorted(ms.open) if s >= horizon]
        if len(done) > 1:  # closed windows never change: their merge is kept until the view moves on
            cached = ms.closed_view
            if cached is None or len(cached[0]) != len(done) or any(a is not b for a, b in zip(cached[0], done)):
                cached = ms.closed_view = (done, Window.merged(done))
            ws[0] = cached[1]  # merging it with the open windows equals merging them all, in order
        view = Window.merged(ws) if ws else Window(horizon, horizon + wc.rolling * wc.length)
        begin = max(horizon, ms.first_seen if ms.first_seen is not None else horizon)
        # up to the newest data, which lags ``now`` by the replicas' flush delay; but never
        # further back than ``grace`` so that a model whose traffic stopped decays to 0 rps
        end = max(min(now, view.last_ts), now - wc.grace) if view.last_ts is not None else now
        return view, max(end - begin, 1e-9)

    def live_resources(self, ms: ModelState, now: float) -> Dict[str, Dict[str, Any]]:
        """The latest resources of each live replica; long-gone replicas are retired
        (their counters kept in the model's ``retired``)."""
        ttl = self.replica_ttl
        out = {}
        for rid, r in list(ms.replicas.items()):
            if now - r.last_seen > ttl and r.last_seen > 0:
                if now - r.last_seen > max(ttl * 10, 3600.0):
                    ms.retired["dropped"] += r.dropped
                    ms.retired["capture_errors"] += r.capture_errors_total
                    del ms.replicas[rid]
                continue
            if r.resources:
                out[rid] = r.resources
        return out

    def _tested(self, ms: ModelState, w: Window, *, extensions: bool = True) -> Optional[DriftReport]:
        """:meth:`_drift`, its failure counted (None)."""
        try:
            return self._drift(ms, w, extensions=extensions)
        except Exception as exc:
            self.failures.fail("drift", exc)
            return None

    def evaluate_model(self, ms: ModelState, now: float) -> Dict[str, Any]:
        """Close the model's due windows and evaluate its rolling view (:meth:`evaluate_models`
        of one model)."""
        begun = self.begin(ms, now)
        self.attach(ms, begun)
        return self.finish(ms, begun, now)

    def evaluate_models(self, models: Sequence[ModelState], now: float,
                        fail: Callable[[str, BaseException], None]) -> List[ModelState]:
        """Evaluate every model of a cycle; returns the models evaluated, in their order. A
        model that fails is counted (``fail("evaluate", ...)``) and left out.

        The models whose profile has extensions go phase by phase, :data:`PHASE_MODELS` at a
        time: each one's windows closed, rolling view merged and columns tested; then their
        extension tests, back to back; then their views and series. The extension tests are
        many small calls: run after another model's whole evaluation their code and data are
        out of the CPU's caches, run back to back they are not (four extensions on 20 columns,
        ten models: 78 µs a model in turn, 48 µs back to back). The other models go one by one:
        for them the phases only take each model's view out of the caches before its last phase
        (measured: 10–20 % slower cycles for 50 and 200 models without extensions)."""
        done: List[Tuple[int, ModelState]] = []
        group: List[Tuple[int, ModelState, Any]] = []

        def run_group() -> None:
            for _, ms, b in group:
                self.attach(ms, b)
            for i, ms, b in group:
                try:
                    self.finish(ms, b, now)
                    done.append((i, ms))
                except Exception as exc:
                    fail("evaluate", exc)
            group.clear()

        for i, ms in enumerate(models):
            try:
                b = self.begin(ms, now)
                if b[3] is not None and ms.profile.extensions:
                    group.append((i, ms, b))
                else:  # nothing to attach: its last phase now, while its view is in the caches
                    self.finish(ms, b, now)
                    done.append((i, ms))
            except Exception as exc:
                fail("evaluate", exc)
            if len(group) >= PHASE_MODELS:
                run_group()
        run_group()
        done.sort(key=lambda d: d[0])
        return [ms for _, ms in done]

    def begin(self, ms: ModelState, now: float) -> Tuple[List[Dict[str, Any]], Window, float, Optional[DriftReport]]:
        """The first phase: close due windows, merge the rolling view and test its columns
        (``(closed results, view, seconds, report)``; the report without its extensions)."""
        closed = self.close_windows(ms, now)
        view, seconds = self.rolling(ms, now)
        return closed, view, seconds, self._tested(ms, view, extensions=False)

    def attach(self, ms: ModelState, begun: Tuple[Any, Window, float, Optional[DriftReport]]) -> None:
        """The second phase: the profile's extension tests on the rolling view, into its report
        (a failure is counted under ``drift``: the report keeps its columns). Never raises."""
        _, view, _, report = begun
        if report is None or not ms.profile.extensions:
            return
        try:
            estimate_eval.attach(ms, report, view.summary, quality=False)  # outlier shares: on read (readable)
        except Exception as exc:
            self.failures.fail("drift", exc)

    def finish(self, ms: ModelState, begun: Tuple[List[Dict[str, Any]], Window, float, Optional[DriftReport]],
               now: float) -> Dict[str, Any]:
        """The last phase: the view (figures, drift, quality, performance, segments,
        extensions, resources, detectors) and the series."""
        closed, view, seconds, report = begun
        res = self.window_result(ms, view, seconds, parts=self.rolling_parts(ms, now), report=report)
        resources = aggregate_resources(self.live_resources(ms, now))
        res.update(_resource_fields(resources))
        res["resources"] = resources
        span = self.wc.rolling * self.wc.length
        res["detectors"] = {
            name: {
                "method": ms.detector_config(name).method,
                "drift": bool(ms.detector_hits.get(name) is not None and now - ms.detector_hits[name] <= span),
                "last_detected": ms.detector_hits.get(name),
                "detections": ms.detector_counts.get(name, 0),
                "restarts": ms.detector_restarts.get(name, 0),
            }
            for name in NAMES
        }
        estimate_eval.detector_calibrations(ms, res["detectors"])  # thresholds from expected_run_time (issue 13)
        current = max(ms.open.values(), key=lambda w: w.start) if ms.open else (ms.closed[-1] if ms.closed else None)
        ms.view = {
            "evaluated_at": now,
            "rolling": res,
            "window": current.figures(current.end - current.start) if current is not None else None,
            "closed": closed,
        }
        try:
            ms.series = model_series(ms, res)
        except Exception as exc:
            self.failures.fail("series", exc)
            ms.series = []
        return ms.view
