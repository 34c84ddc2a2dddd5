"""Streaming detectors calibrated from an expected run time between false alarms (issue 13).

With ``detectors.<name>.expected_run_time`` set (``30d``), a model's detector does not start
with the configured sensitivity. It first observes ``reference_values`` values of its own
series (mean latency per batch, error rate per batch, the 0/1 error of each joined label),
which also give the time between updates; then
:func:`~raywatch.drift.runlength.calibrate_detector` finds, by simulation on those values,
the sensitivity parameter whose mean run length between false alarms is at least the
expected run time, and the detector starts with it. Calibration runs on a worker thread
(about a second per million simulated updates, ``calibration_budget``) so the actor's loop
never waits on it; values that arrive meanwhile are not fed to any detector.

A calibration that cannot be made (too few distinct values, a run length of fewer than ten
updates) is reported, and the detector runs with its configured parameters.

State, per detector, is plain data kept in the model's state record (``calibrations``)::

    {"status": "collecting" | "ready" | "failed", "key": {<the settings it was made for>},
     "values": [...], "first_ts": ..., "last_ts": ...,           # while collecting
     "result": <RunLengthCalibration.to_dict()>, "error": "..."}  # once made

A calibration made for other settings (another method, parameters or run time) is dropped
and made again. A calibration in flight when the state is written is stored as collecting
(with its values), and runs again at the next value after a restart.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any, Dict, List, Mapping, Optional

from raywatch.drift.runlength import calibrate_detector, describe_run_length

__all__ = ["DetectorCalibrations"]

log = logging.getLogger("raywatch.aggregate.calibrated")

_EXECUTOR: Optional[concurrent.futures.ThreadPoolExecutor] = None
_LOCK = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="raywatch-calibrate")
        return _EXECUTOR


def _key(dcfg: Any) -> Dict[str, Any]:
    return {"method": dcfg.method, "params": dict(dcfg.params), "expected_run_time": float(dcfg.expected_run_time),
            "reference_values": int(dcfg.reference_values), "calibration_budget": int(dcfg.calibration_budget)}


def _calibrate(key: Mapping[str, Any], values: List[float], interval: float) -> Dict[str, Any]:
    cal = calibrate_detector(key["method"], values, key["expected_run_time"], interval, params=key["params"],
                             budget=key["calibration_budget"])
    return cal.to_dict()


class DetectorCalibrations:
    """The calibrations of one model's detectors (see the module docstring).

    ``fallback_interval``: seconds between updates when the observed values share one
    timestamp (the replicas' flush interval).
    """

    def __init__(self, fallback_interval: float = 1.0):
        self.fallback_interval = float(fallback_interval)
        self.entries: Dict[str, Dict[str, Any]] = {}
        self._futures: Dict[str, "concurrent.futures.Future[Dict[str, Any]]"] = {}

    # ------------------------------------------------------------------ the detector's side
    def _entry(self, which: str, dcfg: Any) -> Dict[str, Any]:
        key = _key(dcfg)
        e = self.entries.get(which)
        if e is None or e.get("key") != key:
            e = self.entries[which] = {"status": "collecting", "key": key, "values": [], "first_ts": None, "last_ts": None}
            self._futures.pop(which, None)
        return e

    def params(self, which: str, dcfg: Any) -> Optional[Dict[str, Any]]:
        """The parameters detector ``which`` runs with: calibrated ones, the configured ones
        when calibration failed, None while it is being made."""
        e = self._entry(which, dcfg)
        self._poll(which, e)
        if e["status"] == "ready":
            return dict(e["result"]["params"])
        if e["status"] == "failed":
            return dict(dcfg.params)
        return None

    def offer(self, which: str, dcfg: Any, x: float, ts: float) -> None:
        """One value of the series while the detector is not running: kept until there are
        ``reference_values`` of them, then the calibration starts."""
        e = self._entry(which, dcfg)
        if e["status"] != "collecting" or which in self._futures:
            return
        values = e["values"]
        values.append(float(x))
        e["first_ts"] = ts if e["first_ts"] is None else min(e["first_ts"], ts)
        e["last_ts"] = ts if e["last_ts"] is None else max(e["last_ts"], ts)
        if len(values) >= dcfg.reference_values:
            span = float(e["last_ts"]) - float(e["first_ts"])
            interval = span / (len(values) - 1) if span > 0 else self.fallback_interval
            e["interval"] = interval
            self._futures[which] = _executor().submit(_calibrate, dict(e["key"]), list(values), interval)

    def _poll(self, which: str, e: Dict[str, Any]) -> None:
        fut = self._futures.get(which)
        if fut is None or not fut.done():
            return
        del self._futures[which]
        try:
            e["result"] = fut.result()
            e["status"] = "ready"
        except Exception as exc:
            log.warning("detector %s: no calibration (%s: %s); it runs with its configured parameters",
                        which, type(exc).__name__, exc)
            e["status"], e["error"] = "failed", f"{type(exc).__name__}: {exc}"
        e["values"] = []

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait for the calibrations in flight (tests); True when none is left running."""
        done, pending = concurrent.futures.wait(list(self._futures.values()), timeout=timeout)
        return not pending

    # ------------------------------------------------------------------ status
    def info(self, which: str, dcfg: Any) -> Optional[Dict[str, Any]]:
        """For status and the report: where the calibration of ``which`` stands, and the
        false-alarm rate in time (None when the detector has no ``expected_run_time``)."""
        if dcfg.expected_run_time is None or not dcfg.enabled:
            return None
        e = self._entry(which, dcfg)
        self._poll(which, e)
        target = describe_run_length(float(dcfg.expected_run_time))
        out: Dict[str, Any] = {"status": e["status"], "expected_run_time": float(dcfg.expected_run_time),
                               "target": target}
        if e["status"] == "collecting":
            running = which in self._futures
            out["values"] = len(e["values"])
            out["needed"] = int(dcfg.reference_values)
            out["text"] = (f"calibrating for {target}" if running else
                           f"collecting {len(e['values'])} of {dcfg.reference_values} values to calibrate for {target}")
        elif e["status"] == "ready":
            r = e["result"]
            out.update(parameter=r["parameter"], value=r["value"], interval=r["interval"], measured=r["measured"],
                       extrapolated=bool(r["extrapolated"]), updates_simulated=r["updates_simulated"])
            how = ("extrapolated beyond the simulation" if r["extrapolated"] else
                   f"measured {describe_run_length(float(r['measured']) * float(r['interval'])).replace('one false alarm per ', '')} in simulation")
            out["text"] = f"{target} ({r['parameter']}={r['value']:.4g}, one update per {r['interval']:.3g} s; {how})"
        else:
            out["error"] = e.get("error")
            out["text"] = f"not calibrated ({e.get('error')}); configured parameters"
        return out

    # ------------------------------------------------------------------ state
    def state(self) -> Dict[str, Any]:
        out = {}
        for which, e in self.entries.items():
            d = {k: v for k, v in e.items()}
            d["values"] = list(e.get("values") or [])
            out[which] = d
        return out

    def restore(self, data: Optional[Mapping[str, Any]]) -> None:
        self.entries, self._futures = {}, {}
        for which, e in (data or {}).items():
            if not isinstance(e, Mapping) or e.get("status") not in ("collecting", "ready", "failed"):
                continue
            e = dict(e)
            if e["status"] == "ready" and not isinstance(e.get("result"), Mapping):
                continue
            e["values"] = [float(v) for v in e.get("values") or []]
            self.entries[str(which)] = e
