"""The rollout router (issue 14): the model application's ingress, in front of the model's deployment.

The serve-app builder (:mod:`raywatch.serve.app`) puts it in front of a monitored ingress
whose settings have ``remediation:``; in Python, bind it yourself
(``router_deployment().bind(model_app, deployment="Model", payload_log=..., model="fraud")``).
Behind it the model's deployment receives the request's JSON body (a dict) rather than the
HTTP request, and the request id stays the same (Serve passes it along), so feedback joins.

Every request goes to the champion (the model's deployment, through its handle) and its
answer is returned. What the remediation controller asks for on top (the *route*, polled
from the controller every ``poll_interval``; a router that cannot reach the controller
keeps the last route, or routes everything to the champion) is done beside it:

* ``shadow``: the request is mirrored to the candidate application's deployment as a
  fire-and-forget task — never awaited on the request path, at most ``max_in_flight``
  outstanding (beyond: not mirrored, counted), abandoned after ``timeout``. When both
  have answered, their predictions are compared (agreement), and the shadow's answer is
  logged as the candidate's version (``shadow`` rows of the payload log: its performance
  once labels arrive, :func:`raywatch.payload.labelled_dataset` with ``shadow=True``).
* ``canary``: a ``share`` of requests (by a hash of the request id) is answered by the
  candidate; when the candidate fails or exceeds ``timeout``, the failure is counted
  against it and the request is answered by the champion, so a failing canary costs the
  user latency, never an error.
* ``candidate``: every request goes to the candidate (while the champion's replicas
  reconfigure during a promotion), falling back to the champion the same way.

Per arm the router counts requests, failures, timeouts, mirrored calls it did not make,
agreement and latency, and reports them with each poll (:meth:`Figures.snapshot`).

With ``payload_log`` the router also writes the requests it answers to the payload log
(:mod:`raywatch.payload`) off the request path: a bounded buffer, flushed by a background
thread, rows as :func:`raywatch.payload.payload_rows` makes them (features after the
capture's allow-list and redaction), each with the version of the arm that answered.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import zlib
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional

from raywatch.config.remediate import CANDIDATE_SUFFIX
from raywatch.remediate.rollout import ArmFigures

__all__ = ["RolloutRouter", "Figures", "router_deployment", "agree"]

log = logging.getLogger("raywatch.serve.router")

ARMS = ("champion", "candidate", "shadow")
_PRED_KEYS = ("prediction", "label", "class", "predicted", "y", "output")


def agree(a: Any, b: Any) -> bool:
    """Whether two answers carry the same prediction (the first of ``prediction``,
    ``label``, … in a dict; the value itself otherwise; numbers within 1e-9 relative).

    >>> agree({"prediction": 1, "score": 0.8}, {"prediction": 1, "score": 0.6}), agree(0.5, 0.7)
    (True, False)
    """
    def pred(x: Any) -> Any:
        if isinstance(x, Mapping):
            for k in _PRED_KEYS:
                if k in x:
                    return x[k]
        return x

    pa, pb = pred(a), pred(b)
    if isinstance(pa, (int, float)) and isinstance(pb, (int, float)):
        return abs(float(pa) - float(pb)) <= 1e-9 * max(1.0, abs(float(pa)))
    return pa == pb


class _Arm:
    __slots__ = ("requests", "errors", "timeouts", "dropped", "compared", "agreed", "lat", "error_types")

    def __init__(self) -> None:
        self.requests = self.errors = self.timeouts = self.dropped = self.compared = self.agreed = 0
        self.lat: Deque[float] = deque(maxlen=2000)
        self.error_types: Dict[str, int] = {}

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        name = type(exc).__name__
        if name in self.error_types or len(self.error_types) < 10:
            self.error_types[name] = self.error_types.get(name, 0) + 1

    def figures(self) -> ArmFigures:
        p95 = None
        if self.lat:
            s = sorted(self.lat)
            p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
        return ArmFigures(self.requests, self.errors, self.timeouts, self.dropped, self.compared, self.agreed, p95,
                          {"error_types": dict(self.error_types)} if self.error_types else {})


class Figures:
    """Counters of one route epoch, per arm.

    >>> f = Figures(3)
    >>> f.arm("candidate").requests += 2
    >>> f.snapshot()["arms"]["candidate"]["requests"], f.snapshot()["epoch"]
    (2, 3)
    """

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.arms: Dict[str, _Arm] = {a: _Arm() for a in ARMS}
        self.in_flight = 0  # calls to the candidate (canary) awaited on the request path

    def arm(self, name: str) -> _Arm:
        return self.arms[name]

    def snapshot(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "arms": {k: v.figures().to_dict() for k, v in self.arms.items()},
                "in_flight": self.in_flight}


_NONE_ROUTE: Dict[str, Any] = {"epoch": 0, "mode": "none"}


class RolloutRouter:
    """The router deployment's class (see the module docstring); deploy it with
    :func:`router_deployment` ``.bind(model_app, model_key)`` — or ``deployment=`` the model's
    deployment name instead of ``model_key``, the application's name then read from Serve.
    ``model``: the model's name in the payload log (default: the deployment's name)."""

    def __init__(self, champion: Any, model_key: Optional[str] = None, *, deployment: Optional[str] = None,
                 model: Optional[str] = None, controller: str = "raywatch-remediation",
                 namespace: str = "raywatch", poll_interval: float = 0.25, method: str = "remote",
                 payload_log: Optional[Mapping[str, Any]] = None, capture: Optional[Mapping[str, Any]] = None,
                 version: Optional[str] = None):
        self.champion = champion
        self.model_key = model_key or f"?/{deployment}"
        self.model = model
        self.controller_name = controller
        self.namespace = namespace
        self.poll_interval = float(poll_interval)
        self.route: Dict[str, Any] = dict(_NONE_ROUTE)
        self.figures = Figures(0)
        self._candidate: Any = None
        self._candidate_key: Any = None
        self._ctl: Any = None
        self._poller: Optional[asyncio.Task] = None
        self._mirrors = 0
        self._bg: set = set()
        self.version = version
        self.replica_id = uuid.uuid4().hex[:12]
        self.inert = False
        try:
            from raywatch.serve.compat import replica_identity

            app, _, rid = replica_identity()
            self.replica_id = rid or self.replica_id
            if model_key is None and app:
                self.model_key = f"{app}/{deployment}"
            self.inert = bool(app and app.endswith(CANDIDATE_SUFFIX))  # the router inside a candidate app
        except Exception:  # outside a replica (tests of the class)
            pass
        self.payload = None
        self._payload_rows: List[Dict[str, Any]] = []
        self._payload_lock = threading.Lock()
        if payload_log and not self.inert:
            self._start_payload_log(payload_log, capture)

    # ------------------------------------------------------------------ payload log
    def _start_payload_log(self, payload_log: Mapping[str, Any], capture: Optional[Mapping[str, Any]]) -> None:
        from raywatch.config import CaptureConfig, parse_config
        from raywatch.config.remediate import PayloadLogConfig
        from raywatch.payload.log import PayloadLog
        from raywatch.serve.extract import Extractor, prediction_and_score

        cfg = parse_config(dict(payload_log), PayloadLogConfig, source="router payload_log")
        self.payload = PayloadLog(cfg)
        self.extractor = Extractor.from_config(parse_config(dict(capture or {}), CaptureConfig, source="router capture"))
        self._split = prediction_and_score
        self._payload_stop = threading.Event()
        threading.Thread(target=self._payload_loop, name="raywatch-payload-log", daemon=True).start()

    def _payload_loop(self) -> None:
        from raywatch.payload.rows import payload_rows

        while not self._payload_stop.wait(min(1.0, float(self.payload.cfg.flush_interval))):
            self._payload_tick(payload_rows)

    def _payload_tick(self, payload_rows: Any) -> None:
        with self._payload_lock:
            records, self._payload_rows = self._payload_rows, []
        app, _, dep = self.model_key.partition("/")
        by_version: Dict[Any, List[Any]] = {}
        for rec, version, shadow in records:
            by_version.setdefault((version, shadow), []).append(rec)
        for (version, shadow), recs in by_version.items():
            labels = _Labels(app, dep, self.route.get("model") or self.model or dep, version, self.replica_id)
            rows = payload_rows(recs, labels, self.extractor, self._split, epoch_offset=0.0)
            if shadow:
                for r in rows:
                    r["shadow"] = True
            self.payload.add(rows)
        try:
            self.payload.maybe_flush()
        except Exception as exc:  # noqa: BLE001 - kept pending, counted by the log
            log.warning("payload log flush failed: %s", exc)

    def _log_payload(self, rid: str, payload: Any, result: Any, version: Optional[str], shadow: bool = False) -> None:
        if self.payload is None:
            return
        rec = ("__call__", 0.0, time.time(), None, None, _Ctx(rid), (payload,), {}, result, None)
        with self._payload_lock:
            if len(self._payload_rows) < self.payload.cfg.max_pending_rows:
                self._payload_rows.append((rec, version, shadow))
            else:
                self.payload.counters["rows_dropped"] += 1

    def flush_payload_log(self) -> Dict[str, Any]:
        """Flush what waits (tests and shutdown); returns the log's counters."""
        if self.payload is None:
            return {}
        from raywatch.payload.rows import payload_rows

        self._payload_tick(payload_rows)
        self.payload.flush()
        return self.payload.stats()

    # ------------------------------------------------------------------ route
    def _ensure_poller(self) -> None:
        if self._poller is None and not self.inert:
            self._poller = asyncio.get_running_loop().create_task(self._poll_loop())

    async def _poll_loop(self) -> None:
        import ray

        while True:
            try:
                if self._ctl is None:
                    self._ctl = ray.get_actor(self.controller_name, namespace=self.namespace)
                report = self.figures.snapshot()
                if self.payload is not None:  # its payload log's counters, relayed to the stats actor's series
                    report["payload_log"] = dict(self.payload.counters)
                route = await self._ctl.route.remote(self.model_key, self.replica_id, report)
                if route:
                    self._set_route(route)
            except Exception as exc:  # noqa: BLE001 - no controller: keep the last route
                self._ctl = None
                log.debug("rollout router: controller unreachable (%s)", exc)
            await asyncio.sleep(self.poll_interval)

    def _set_route(self, route: Dict[str, Any]) -> None:
        if route.get("epoch") != self.route.get("epoch"):
            old, self.figures = self.figures, Figures(int(route.get("epoch") or 0))
            self.figures.in_flight = old.in_flight  # calls still awaited from the previous route
        self.route = route

    def _candidate_handle(self) -> Any:
        key = (self.route.get("candidate_app"), self.route.get("candidate_deployment"))
        if key != self._candidate_key:
            from ray import serve

            self._candidate = serve.get_deployment_handle(key[1], app_name=key[0]) if key[0] else None
            self._candidate_key = key
        return self._candidate

    # ------------------------------------------------------------------ requests
    async def __call__(self, request: Any) -> Any:
        return await self.handle(await _payload_of(request))

    async def handle(self, payload: Any) -> Any:
        self._ensure_poller()
        route = self.route
        mode = route.get("mode", "none")
        rid = _request_id()
        figs = self.figures
        if mode == "shadow" and self._candidate_handle() is not None:
            champion_answer: asyncio.Future = asyncio.get_running_loop().create_future()
            self._mirror(payload, champion_answer, route, figs, rid)
            try:
                out = await self._call_champion(payload, figs)
            except BaseException:
                if not champion_answer.done():
                    champion_answer.set_result(_FAILED)
                raise
            if not champion_answer.done():
                champion_answer.set_result(out)
            self._log_payload(rid, payload, out, route.get("champion_version") or self.version)
            return out
        if mode in ("canary", "candidate") and self._candidate_handle() is not None:
            share = 1.0 if mode == "candidate" else float(route.get("share") or 0.0)
            if zlib.crc32(rid.encode()) / 2**32 < share:
                arm = figs.arm("candidate")
                arm.requests += 1
                t0 = time.perf_counter()
                self.figures.in_flight += 1
                try:
                    out = await asyncio.wait_for(self._candidate_handle().remote(payload), float(route.get("timeout") or 5.0))
                    arm.lat.append(time.perf_counter() - t0)
                    self._log_payload(rid, payload, out, route.get("candidate_version"))
                    return out
                except asyncio.TimeoutError:
                    arm.timeouts += 1
                except Exception as exc:  # noqa: BLE001 - counted against the candidate; the champion answers
                    arm.failed(exc)
                    log.debug("canary failed (%s); answered by the champion", exc)
                finally:
                    self.figures.in_flight -= 1
        out = await self._call_champion(payload, figs)
        self._log_payload(rid, payload, out, route.get("champion_version") or self.version)
        return out

    async def _call_champion(self, payload: Any, figs: Figures) -> Any:
        arm = figs.arm("champion")
        arm.requests += 1
        t0 = time.perf_counter()
        try:
            out = await self.champion.remote(payload)
        except Exception as exc:
            arm.failed(exc)
            raise
        arm.lat.append(time.perf_counter() - t0)
        return out

    def _mirror(self, payload: Any, champion_answer: "asyncio.Future", route: Dict[str, Any], figs: Figures,
                rid: str) -> None:
        arm = figs.arm("shadow")
        if self._mirrors >= int(route.get("max_in_flight") or 64):
            arm.dropped += 1
            return
        self._mirrors += 1
        task = asyncio.get_running_loop().create_task(
            self._shadow_call(self._candidate_handle(), payload, champion_answer, float(route.get("timeout") or 5.0), arm,
                              rid, route.get("candidate_version")))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _shadow_call(self, handle: Any, payload: Any, champion_answer: "asyncio.Future", timeout: float,
                           arm: _Arm, rid: str, version: Optional[str]) -> None:
        arm.requests += 1
        t0 = time.perf_counter()
        resp = None
        try:
            resp = handle.remote(payload)
            out = await asyncio.wait_for(resp, timeout)
            arm.lat.append(time.perf_counter() - t0)
            self._log_payload(rid, payload, out, version, shadow=True)  # captured as the candidate's version
            theirs = await asyncio.wait_for(asyncio.shield(champion_answer), timeout)
            if theirs is not _FAILED:
                arm.compared += 1
                arm.agreed += int(agree(theirs, out))
        except asyncio.TimeoutError:
            arm.timeouts += 1
            _cancel(resp)
        except Exception as exc:  # noqa: BLE001 - a failing shadow is counted, never felt
            arm.failed(exc)
        finally:
            self._mirrors -= 1

    def stats(self) -> Dict[str, Any]:
        return {"route": dict(self.route), "figures": self.figures.snapshot(), "mirrors_in_flight": self._mirrors,
                "payload_log": self.payload.stats() if self.payload is not None else None}


_FAILED = object()


def _cancel(resp: Any) -> None:
    try:
        if resp is not None:
            resp.cancel()
    except Exception:  # noqa: BLE001
        pass


class _Ctx:
    __slots__ = ("request_id",)

    def __init__(self, rid: str):
        self.request_id = rid


class _Labels:
    __slots__ = ("app", "deployment", "model", "version", "replica_id")

    def __init__(self, app: str, deployment: str, model: str, version: Optional[str], replica_id: str):
        self.app, self.deployment, self.model, self.version, self.replica_id = app, deployment, model, version, replica_id


def _request_id() -> str:
    try:
        from raywatch.serve.capture import current_request_context

        ctx = current_request_context()
        rid = getattr(ctx, "request_id", None)
        if rid:
            return str(rid)
    except Exception:  # noqa: BLE001
        pass
    return uuid.uuid4().hex


async def _payload_of(request: Any) -> Any:
    """The JSON body of an HTTP request (the query parameters when there is none); any
    other argument as it is."""
    if type(request).__module__.startswith("starlette.") and hasattr(request, "json"):
        body = await request.body()
        if body:
            import json

            return json.loads(body)
        return dict(request.query_params)
    return request


def router_deployment(**options: Any) -> Any:
    """The router as a Serve deployment (``options`` as ``serve.deployment`` takes them;
    by default no CPU of its own, like Serve's proxies)."""
    from ray import serve

    opts = {"ray_actor_options": {"num_cpus": 0}, "max_ongoing_requests": 1000, "name": "RolloutRouter"}
    opts.update(options)
    return serve.deployment(**opts)(RolloutRouter)
