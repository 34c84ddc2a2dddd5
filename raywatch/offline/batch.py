"""Monitoring a Ray Data batch-inference job like a Serve deployment.

:func:`monitor_batches` wraps the function (or callable class) a job gives to
``Dataset.map_batches``. Every batch it is called with becomes what a replica's flush is: a
:class:`~raywatch.stats.batch.ReplicaBatch` of the rows (``requests``), the call's duration
(``latency``: one value per batch), exceptions by type (``errors``; the exception still
fails the batch, as without raywatch) and the window summary of the batch's columns and
the function's output columns joined (features and predictions, against the reference
profile; an output of another length than its input is left out, its input kept). Batches
go to the stats actor that owns the model key ``batch/<job>`` (app ``batch``, deployment
``<job>``): its drift tests, rules, alerts, ``raywatch status`` and the report treat the job
like any deployment. Each run of the wrapper (one ``monitor_batches`` call) is a deployment
generation of its own, so a new run starts fresh figures.

Nothing lost: a batch's summary is acknowledged by the stats actor before the call returns
its output (about a millisecond for the actor call, plus the summary: 1–2 ms per 1,000 rows ×
20 columns), for a **function** (Ray Data tasks) and a **callable class** (an actor pool) alike.
Neither has an end to wait at: Ray Data kills a pool's actors once the dataset is done, without
calling ``__del__`` first, so a summary still pending on a thread then is lost (an earlier
design shipped from a thread per actor: 4 of a job's 12 batches reached the stats actor). A
stats actor that is down costs the batch its retries within ``close_timeout``, never the job.

Monitoring never fails the job: a batch raywatch cannot summarize is counted
(``capture_errors_total``) and shipped without a summary.

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> from raywatch.stats.summary import WindowSummary
>>> profile = Profile.fit({"x": np.arange(100.0), "score": np.linspace(0, 1, 100)}, seed=0)
>>> sent = []
>>> class Recorder:                                   # a stand-in for the actor (no Ray in a doctest)
...     def resolve(self): return "actor"
...     def send(self, handle, batch): sent.append(batch); return len(sent)
...     def done(self, refs): return refs
...     def check(self, ref): return "ok"
...     def call(self, handle, method, *args): return None
>>> def score(batch):
...     return {"score": batch["x"] / 100}
>>> monitored = monitor_batches(score, "scoring", profile=profile, transport=Recorder())
>>> monitored({"x": np.arange(50.0)})["score"][:3].tolist()
[0.0, 0.01, 0.02]
>>> b = sent[0]
>>> b.model_key, b.requests, b.error_count, WindowSummary.from_bytes(b.summary).column("score").count
('batch/scoring', 50, 0, 50)
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
import uuid
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from raywatch.config import MonitorConfig, load_config, parse_config
from raywatch.offline.blocks import arrow_table, summarize_block
from raywatch.serve.capture import RateLimitedLog
from raywatch.serve.shipper import RayTransport, Shipper, default_resolver
from raywatch.stats.batch import ReplicaBatch, model_key
from raywatch.stats.columns import to_columns
from raywatch.stats.profile import Profile
from raywatch.stats.sketch import LatencySketch

__all__ = ["monitor_batches", "BatchMonitor", "APP"]

log = logging.getLogger("raywatch.offline.batch")

APP = "batch"
"""The app label of every batch job: its model key is ``batch/<job>``."""


def _joined(inputs: Any, outputs: Any) -> Any:
    """The batch's columns and the output's (the output's win a shared name), or the
    inputs alone when the output has another length (or is no table)."""
    table_in, table_out = arrow_table(inputs), arrow_table(outputs)
    if table_in is not None and table_out is not None and table_in.num_rows == table_out.num_rows:
        for name in table_out.column_names:
            col = table_out.column(name)
            if name in table_in.column_names:
                table_in = table_in.set_column(table_in.column_names.index(name), name, col)
            else:
                table_in = table_in.append_column(name, col)
        return table_in
    cols, rows = to_columns(inputs)
    if outputs is None or inspect.isgenerator(outputs):
        return cols
    try:
        out, out_rows = to_columns(outputs)
    except (TypeError, ValueError):
        return cols
    return {**cols, **out} if out_rows == rows else cols


class BatchMonitor:
    """One worker's monitor of a job (see the module docstring): :meth:`record` takes a
    batch, :meth:`close` waits for what is pending.

    ``transport`` stands in for Ray in tests (``resolve``/``send``/``done``/``check``/``call``,
    as :class:`~raywatch.serve.shipper.RayTransport`).
    """

    def __init__(self, job: str, profile_bytes: Optional[bytes], config: MonitorConfig, *, run: str,
                 version: Optional[str] = None, transport: Any = None,
                 close_timeout: float = 30.0, seed: Optional[int] = None):
        self.job = job
        self.key = model_key(APP, job)
        self.config = config
        self.profile_bytes = profile_bytes
        self.profile = Profile.from_bytes(profile_bytes) if profile_bytes else None
        self.run = run
        self.version = version if version is not None else config.version
        self.close_timeout = close_timeout
        self.seed = seed
        self.replica_id = f"{job}-{_node()[:8]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.transport = transport if transport is not None else RayTransport(default_resolver(config, self.key))
        ship = config.shipping
        self.shipper = Shipper(self.transport, max_pending_batches=ship.max_pending_batches,
                               max_retries=ship.max_retries, on_connect=self._register)
        self.seq = 0
        self.batches = 0
        self.capture_errors = 0
        self._log = RateLimitedLog(log)
        self._closed = False

    # ------------------------------------------------------------------ the call
    def call(self, fn: Callable[..., Any], batch: Any, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """``fn(batch, *args, **kwargs)``, recorded."""
        start, t0 = time.time(), time.perf_counter()
        try:
            out = fn(batch, *args, **kwargs)
        except Exception as exc:
            self.record(batch, None, time.perf_counter() - t0, start, error=type(exc).__name__)
            raise
        self.record(batch, out, time.perf_counter() - t0, start)
        return out

    def record(self, batch: Any, out: Any, seconds: float, start: float, error: Optional[str] = None) -> None:
        """Take one batch: summarized, shipped and acknowledged (within ``close_timeout``) now."""
        self._ship((batch, out, seconds, start, error))
        self.shipper.drain(self.close_timeout, self._stamp)

    # ------------------------------------------------------------------ the work
    def build(self, batch: Any, out: Any, seconds: float, start: float, error: Optional[str]) -> ReplicaBatch:
        rows = 0
        summary = None
        try:
            joined = _joined(batch, None if error else out)
            rows = joined.num_rows if arrow_table(joined) is not None else to_columns(joined)[1]
            if self.profile is not None and rows:
                summary = summarize_block(self.profile, joined, seed=self.seed).to_bytes()
        except Exception as exc:  # monitoring never fails the job: the batch counts, its summary not
            self.capture_errors += 1
            self._log.warning("raywatch could not summarize a batch of job %s: %s: %s", self.job, type(exc).__name__, exc)
        sketch = LatencySketch()
        sketch.add(seconds)
        self.seq += 1
        self.batches += 1
        return ReplicaBatch(
            app=APP, deployment=self.job, replica_id=self.replica_id, start_ts=start, end_ts=start + seconds,
            model=self.config.model or self.job, version=self.version, node_id=_node() or None,
            requests=rows, errors={error: 1} if error else {}, latency=sketch.to_dict(), summary=summary,
            seq=self.seq, generation=self.run, methods={"map_batches": rows},
        )

    def _ship(self, item: Tuple[Any, ...]) -> None:
        self.shipper.submit(self.build(*item))
        self.shipper.pump(self._stamp)

    def _stamp(self, b: ReplicaBatch) -> None:
        b.dropped_total = self.shipper.dropped_records
        b.capture_errors_total = self.capture_errors

    def _register(self, handle: Any) -> None:
        self.transport.call(handle, "register_model", self.key, self.config, self.profile_bytes)

    def close(self, timeout: Optional[float] = None) -> bool:
        """Wait (up to ``timeout``, default ``close_timeout``) until every batch taken is
        summarized and acknowledged by the stats actor; True when it was."""
        if self._closed:
            return True
        self._closed = True
        timeout = self.close_timeout if timeout is None else timeout
        done = self.shipper.drain(timeout, self._stamp)
        if not done:
            log.warning("raywatch: job %s closed with %d batch(es) not acknowledged by the stats actor",
                        self.job, len(self.shipper.pending) + len(self.shipper.inflight))
        return done


def _node() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:  # noqa: BLE001 - a label only
        return ""


def _settings(job: str, profile: Union[Profile, str, os.PathLike, None], config: Any, version: Optional[str],
              **settings: Any) -> Dict[str, Any]:
    if not job or "/" in job:
        raise ValueError(f"job must be a name without '/', got {job!r}")
    if config is None:
        cfg = MonitorConfig()
    elif isinstance(config, MonitorConfig):
        cfg = config
    elif isinstance(config, (str, os.PathLike)):
        cfg = load_config(config)
    else:
        cfg = parse_config(config)
    if settings:
        cfg = cfg.merged(settings, source="monitor_batches")
    if profile is None and cfg.profile_path:
        profile = cfg.profile_path
    if profile is not None and not isinstance(profile, Profile):
        profile = Profile.load(profile)
    return {"job": job, "profile_bytes": profile.to_bytes() if profile is not None else None, "config": cfg,
            "run": uuid.uuid4().hex[:12], "version": version}


def monitor_batches(fn: Any, job: str, *, profile: Union[Profile, str, os.PathLike, None] = None,
                    config: Any = None, version: Optional[str] = None, transport: Any = None,
                    close_timeout: float = 30.0, **settings: Any) -> Any:
    """``fn`` (a ``map_batches`` function or callable class), monitored as the model
    ``batch/<job>`` (see the module docstring).

    ``profile`` is the reference profile (a :class:`~raywatch.stats.profile.Profile` or a
    file; default the config's ``profile_path``; without one the stats actor's, when it
    has one for the key). ``config`` is a :class:`~raywatch.config.MonitorConfig`, a dict
    or YAML path of one, and ``settings`` override it as in :func:`raywatch.monitor`
    (``model=``, ``drift=``, ``alerting=`` …). ``version`` labels the run.
    """
    kw = _settings(job, profile, config, version, **settings)
    opts = {"transport": transport, "close_timeout": close_timeout}
    if inspect.isclass(fn):
        return _monitored_class(fn, kw, opts)
    if not callable(fn):
        raise TypeError(f"monitor_batches wraps a function or a callable class, got {type(fn).__name__}")
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError("monitor_batches wraps synchronous functions (Ray Data's async UDFs are not supported)")
    monitors: Dict[int, BatchMonitor] = {}

    @functools.wraps(fn)
    def monitored(batch: Any, *args: Any, **kwargs: Any) -> Any:
        m = monitors.get(os.getpid())  # one per worker process (the function is unpickled in each)
        if m is None:
            m = monitors[os.getpid()] = BatchMonitor(**kw, **opts)
        return m.call(fn, batch, args, kwargs)

    monitored.raywatch_model_key = model_key(APP, job)  # type: ignore[attr-defined]
    return monitored


def _monitored_class(cls: type, kw: Dict[str, Any], opts: Dict[str, Any]) -> type:
    if not callable(getattr(cls, "__call__", None)):
        raise TypeError(f"{cls.__name__} has no __call__: map_batches calls its instances")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        cls.__init__(self, *args, **kwargs)
        self._raywatch_monitor = BatchMonitor(**kw, **opts)

    def __call__(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        return self._raywatch_monitor.call(functools.partial(cls.__call__, self), batch, args, kwargs)

    def __del__(self: Any) -> None:
        m = self.__dict__.get("_raywatch_monitor")
        if m is not None:
            m.close()
        parent = getattr(cls, "__del__", None)
        if parent is not None:
            parent(self)

    ns = {"__init__": __init__, "__call__": __call__, "__del__": __del__, "__module__": cls.__module__,
          "__qualname__": cls.__qualname__, "__doc__": cls.__doc__, "raywatch_model_key": model_key(APP, kw["job"])}
    return type(cls.__name__, (cls,), ns)
