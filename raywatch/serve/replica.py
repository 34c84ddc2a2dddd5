"""The monitor inside one replica: capture, flusher thread, resources, shipping, reload.

:class:`ReplicaMonitor` owns a :class:`~raywatch.serve.capture.Capture` (the request path)
and one daemon thread, the flusher, which every ``shipping.flush_interval`` seconds (or as
soon as ``shipping.flush_max_records`` records are waiting) drains the records, builds a
:class:`~raywatch.stats.batch.ReplicaBatch` (:class:`~raywatch.serve.buffer.BatchBuilder`),
samples resources when due (:class:`~raywatch.serve.resources.ResourceSampler`) and hands the
batch to the :class:`~raywatch.serve.shipper.Shipper`. Nothing here blocks a request.

The reference profile comes from ``profile_path`` (loaded in the replica and registered
with the stats actor through ``register_model``) or, when there is no path, from the actor
(``get_profile``, polled until one is registered). Without a profile the replica still
ships latency, outcomes and resources; the window summary is then ``None``. A
``profile_path`` that cannot be read fails :func:`raywatch.monitor` and the deploy
(:func:`check_profile`) unless ``profile_required`` is false; should it still fail in the
replica (a file on another node), the replica serves, logs it and ships the reason in every
batch (``profile_error``).

After each flush the capture's ``payload_bound`` (and, below it, ``flush_at``) is set from the
byte budget and the payload size the builder measured, so that the records waiting with
their payload fit ``shipping.max_buffer_bytes``.

With ``payload_log:`` the flusher also keeps the sampled requests as Parquet
(:mod:`raywatch.serve.payload`), off the request path.

:meth:`ReplicaMonitor.reconfigure` applies new settings in place (sampling, allow-list,
redaction, extractors, flush cadence, bounds, resources) — this is what a ``raywatch`` key in
a deployment's ``user_config`` does, without restarting the replica.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any, Dict, Mapping, Optional

from raywatch import series
from raywatch.config import ConfigError, MonitorConfig
from raywatch.serve.buffer import BYTE_BUDGET, BatchBuilder, Labels
from raywatch.serve.capture import Capture, RateLimitedLog
from raywatch.serve.extract import Extractor
from raywatch.serve.feedback import FeedbackGate
from raywatch.serve.segments import SegmentBuilder
from raywatch.serve.payload import ReplicaPayloadLog
from raywatch.serve.shipper import RayTransport, Shipper, default_resolver
from raywatch.stats.batch import ReplicaBatch

__all__ = ["ReplicaMonitor", "load_profile", "read_profile_file", "check_profile"]

logger = logging.getLogger("raywatch.serve.replica")

_PROFILE_POLL_INTERVAL = 10.0
_BOUNDARY_MARGIN = 0.1  # seconds before a window boundary at which a waiting flush goes


def load_profile(path: Optional[str] = None, data: Optional[bytes] = None) -> Any:
    """A :class:`raywatch.stats.profile.Profile` from a file or bytes (None if neither)."""
    if path is None and data is None:
        return None
    from raywatch.stats.profile import Profile

    if path is not None:
        import os

        return Profile.load(os.path.expanduser(path))
    return Profile.from_bytes(data)


def read_profile_file(path: str) -> Any:
    """``(profile, the file's bytes)``: the bytes as written, so that a signed profile reaches
    the stats actor with its signature (``actor.profile_key``); ``Profile.to_bytes()`` would
    drop it."""
    import os

    with open(os.path.expanduser(path), "rb") as fh:
        raw = fh.read()
    return load_profile(data=raw), raw


def check_profile(config: MonitorConfig, where: str = "monitor()") -> Optional[str]:
    """Fail now, with what to do, when ``config.profile_path`` cannot be read as a profile
    (a ConfigError naming ``where`` and the field); with ``profile_required: false``, log a
    warning and return the reason instead. None when the profile reads (or there is none)."""
    path = config.profile_path
    if not path:
        return None
    try:
        load_profile(path)
        return None
    except Exception as exc:
        reason = f"cannot read the reference profile {path!r}: {exc}"
    if config.profile_required:
        raise ConfigError([
            f"{where}: profile_path: {reason}. Build it first (raywatch profile build DATA -o {path}), "
            "fix the path, or set profile_required: false to start without a reference profile"
        ], where)
    logger.warning("raywatch: %s; starting without a reference profile (profile_required: false)", reason)
    return reason


class ReplicaMonitor:
    """Everything raywatch runs in one replica. ``start()`` launches the flusher thread.

    Parameters
    ----------
    config:
        The replica's :class:`~raywatch.config.MonitorConfig`.
    labels:
        Who this replica is (:class:`~raywatch.serve.buffer.Labels`).
    transport:
        How batches reach the stats actor; default :class:`RayTransport` with
        :func:`~raywatch.serve.shipper.default_resolver`.
    nvml:
        NVML module for the resource sampler (tests inject a fake).
    profile:
        A reference profile object (overrides ``profile_path``).
    """

    def __init__(
        self,
        config: MonitorConfig,
        labels: Labels,
        *,
        transport: Any = None,
        nvml: Any = None,
        profile: Any = None,
    ):
        self.config = config
        self.labels = labels
        self.wake = threading.Event()
        cap, ship = config.capture, config.shipping
        self.capture = Capture(
            buffer_size=ship.buffer_size,
            sample_rate=cap.sample_rate,
            enabled=cap.enabled,
            keep_results=cap.feedback,
            flush_at=ship.flush_max_records,
            wake=self.wake,
            methods=cap.methods,
        )
        self.reload_errors = 0
        self.reloads = 0
        self.http_feedback = bool(cap.feedback and cap.feedback_route)
        self.feedback_gate = FeedbackGate(cap)
        self._log = RateLimitedLog(logger)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._profile_ref: Any = None
        self._profile_next_poll = 0.0
        self._profile_source = None
        self._profile_file_bytes: Optional[bytes] = None  # profile_path's bytes as written (signed or not)
        self.profile_error: Optional[str] = None
        self._last_shipped_counters: tuple = (0, 0, {})
        self._resources: Optional[Dict[str, Any]] = None
        self._resources_fresh = False
        self._resources_due = 0.0
        self.ticks = 0
        self.deferred = 0  # flusher ticks that waited for more records (see _due)
        self._flushed_at = time.monotonic()
        self._epoch = time.time() - self._flushed_at  # monotonic → epoch seconds (window boundaries)
        self.records_drained = 0
        self.flusher_cpu_s = 0.0
        self._nvml = nvml
        self.sampler = None
        self.builder = BatchBuilder(
            labels,
            Extractor.from_config(cap),
            feedback=cap.feedback,
            max_predictions=cap.max_predictions,
            max_buffer_bytes=ship.max_buffer_bytes,
        )
        self.builder.segments = SegmentBuilder(config, labels, self.builder.extractor, fail=self.builder._failed)
        self._calibrate()
        self.payload_log = ReplicaPayloadLog.make(config, self._payload_log_failed)  # (issue 14)
        if profile is not None:
            self.builder.profile = profile
            self._profile_source = "given"
        elif config.profile_path:
            try:
                self.builder.profile, self._profile_file_bytes = read_profile_file(config.profile_path)
                self._profile_source = "path"
            except Exception as exc:
                self.profile_error = f"cannot read the reference profile {config.profile_path!r}: {exc}"
                logger.error("raywatch could not load the profile %s: %s", config.profile_path, exc)
        self.transport = transport or RayTransport(default_resolver(lambda: self.config, labels.model_key))
        self.shipper = Shipper(
            self.transport,
            max_pending_batches=ship.max_pending_batches,
            max_in_flight=ship.max_in_flight,
            max_retries=ship.max_retries,
            retry_backoff=ship.retry_backoff,
            max_backoff=ship.max_backoff,
            on_connect=self._on_connect,
        )
        self._make_sampler(config)

    # ------------------------------------------------------------------ lifecycle

    def _make_sampler(self, config: MonitorConfig) -> None:
        if not config.resources.enabled:
            self.sampler = None
            self._resources = None
            return
        try:
            from raywatch.serve.resources import ResourceSampler

            self.sampler = ResourceSampler(gpu=config.resources.gpu, nvml=self._nvml)
        except Exception as exc:
            self.sampler = None
            logger.warning("raywatch resource sampling unavailable: %s", exc)

    def _payload_log_failed(self, exc: BaseException) -> None:
        self.reload_errors += 1

    def start(self) -> "ReplicaMonitor":
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"raywatch-flusher-{self.labels.deployment}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, flush: bool = True, timeout: float = 2.0) -> None:
        """Stop the flusher; with ``flush``, ship what is buffered (waiting up to ``timeout``)."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        if flush:
            try:
                self.tick()
                if self.payload_log is not None:
                    self.payload_log.flush()
                self.shipper.drain(timeout=timeout, stamp=self._stamp)
            except Exception as exc:
                logger.warning("raywatch final flush failed: %s", exc)
        if self.sampler is not None:
            self.sampler.close()

    def _window(self, mono: float) -> int:
        """The stats actor's window (``windows.length``, by event time) that a batch ending at
        monotonic time ``mono`` falls in, :data:`_BOUNDARY_MARGIN` early."""
        return int((mono + self._epoch + _BOUNDARY_MARGIN) // self.config.windows.length)

    def _due(self, woken: bool, now: float) -> bool:
        """Whether the flusher flushes at this tick: when woken (``flush_max_records`` or the
        byte budget), with ``shipping.flush_min_records`` waiting, after ``flush_max_wait``,
        when resources are due, or at a window boundary (the stats actor files a batch
        under the window of its last record, so a batch must not straddle one). Under light
        load this makes each flush's fixed cost fall on more records."""
        if woken:
            return True
        ship = self.config.shipping
        if len(self.capture.buffer) >= min(ship.flush_min_records, self.capture.flush_at):
            return True
        wait = ship.flush_max_wait if ship.flush_max_wait is not None else 4 * ship.flush_interval
        if now - self._flushed_at >= wait or (self.sampler is not None and now >= self._resources_due):
            return True
        return self._window(now) != self._window(self._flushed_at)

    def _timeout(self, wall: Optional[float] = None) -> float:
        """How long the flusher sleeps from ``wall`` (epoch seconds, default now):
        ``flush_interval``, or less to wake just before the next window boundary."""
        interval = self.config.shipping.flush_interval
        length = self.config.windows.length
        wall = time.time() if wall is None else wall
        to_boundary = length - (wall + _BOUNDARY_MARGIN) % length + _BOUNDARY_MARGIN / 2
        return max(min(interval, 0.02), min(interval, to_boundary))  # (never a busy loop)

    def _run(self) -> None:
        clock = time.thread_time
        while not self._stop.is_set():
            woken = self.wake.wait(self._timeout())
            self.wake.clear()
            if self._stop.is_set():
                break
            if not self._due(woken, time.monotonic()):
                self.deferred += 1
                continue
            c0 = clock()
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the flusher must survive anything
                self.capture.failed(exc)
            # the flusher thread's own CPU (build, summarize, sample, ship): what monitoring
            # costs off the request path, measured where it is spent
            self.flusher_cpu_s += clock() - c0

    # ------------------------------------------------------------------ flush

    def _payloads_dropped(self) -> Dict[str, int]:
        out = dict(self.builder.payloads_dropped)
        if self.capture.payloads_dropped:
            out[BYTE_BUDGET] = out.get(BYTE_BUDGET, 0) + self.capture.payloads_dropped
        return out

    def _counters(self) -> tuple:
        return (
            self.capture.dropped + self.shipper.unsent_dropped_records,  # abandoned batches: see Shipper
            self.capture.errors + self.builder.capture_errors + self.reload_errors,
            self._payloads_dropped(),
        )

    def _stamp(self, batch: ReplicaBatch) -> None:
        counters = self._counters()
        batch.dropped_total, batch.capture_errors_total, batch.payloads_dropped_total = counters
        batch.profile_error = self.profile_error if self.builder.profile is None else None
        batch.payload_log = self.payload_log.counters if self.payload_log is not None else {}
        self._last_shipped_counters = counters

    def _calibrate(self) -> None:
        """Let the request path keep as many payloads as the byte budget holds, and wake the
        flusher before that many are waiting."""
        c, ship = self.capture, self.config.shipping
        bound = self.builder.payload_bound(c.sample_rate, ship.buffer_size)
        c.payload_bound = bound
        c.flush_at = max(1, min(ship.flush_max_records, bound // 2))

    def tick(self) -> Optional[ReplicaBatch]:
        """One flush: drain, build, queue, pump. Returns the batch built, if any."""
        with self._lock:
            self.ticks += 1
            now = time.monotonic()
            self._flushed_at = now
            if self.sampler is not None and now >= self._resources_due:
                self._resources = self.sampler.sample()
                self._resources_fresh = True
                self._resources_due = now + self.config.resources.interval
            records = self.capture.drain()
            self.records_drained += len(records)
            if self.payload_log is not None:  # (issue 14) sampled requests to Parquet, here on the flusher
                try:
                    self.payload_log.add(records, self.builder)
                    self.payload_log.maybe_flush()  # a failed write keeps its rows (counted by the log)
                except Exception as exc:
                    self.capture.failed(exc)
            counters = self._counters()
            batch = None
            # abandoned batches must reach the actor even when no request comes (see Shipper)
            tell = bool(self.shipper.abandoned) and not self.shipper.pending and not self.shipper.inflight
            if records or self._resources_fresh or counters != self._last_shipped_counters or tell:
                batch = self.builder.build(records, self._resources)
                self._resources_fresh = False
                self.shipper.submit(batch)
                self._calibrate()
            self.shipper.pump(self._stamp)
            self._poll_profile(now)
            return batch

    # ------------------------------------------------------------------ actor side

    def _on_connect(self, handle: Any) -> None:
        profile_bytes = None
        if self.builder.profile is not None and self._profile_source == "path" and self._profile_file_bytes:
            profile_bytes = self._profile_file_bytes  # a signed file keeps its signature
        elif self.builder.profile is not None and self._profile_source in ("path", "given"):
            profile_bytes = self.builder.profile.to_bytes()
        # the MonitorConfig object itself: it pickles with its secrets (sink URLs, keys),
        # which a JSON dump would mask
        self.transport.call(handle, "register_model", self.labels.model_key, self.config, profile_bytes)
        if self.builder.profile is None:
            self._profile_ref = None
            self._profile_next_poll = 0.0

    def _poll_profile(self, now: float) -> None:
        if self.builder.profile is not None or self.shipper.handle is None:
            return
        try:
            if self._profile_ref is None:
                if now >= self._profile_next_poll:
                    self._profile_ref = self.transport.call(self.shipper.handle, "get_profile", self.labels.model_key)
                    self._profile_next_poll = now + _PROFILE_POLL_INTERVAL
                return
            if not self.transport.done([self._profile_ref]):
                return
            ref, self._profile_ref = self._profile_ref, None
            data = self.transport.value(ref)
            if data:
                self.builder.profile = load_profile(data=data)
                self._profile_source = "actor"
                self.profile_error = None
                logger.info("raywatch: reference profile for %s received from the stats actor", self.labels.model_key)
        except Exception as exc:
            self._profile_ref = None
            self._log.warning("raywatch could not fetch the reference profile: %s", exc)

    # ------------------------------------------------------------------ reload

    def reconfigure(self, overrides: Optional[Mapping[str, Any]], base: Optional[MonitorConfig] = None) -> bool:
        """Apply ``overrides`` (the ``raywatch`` mapping of a ``user_config``) on ``base``.

        Returns True when applied. A bad override is logged (naming the field) and counted
        in ``capture_errors_total``; the previous settings stay, and the model keeps serving.
        """
        base = base or self.config
        try:
            new = base.merged(dict(overrides or {}), source="user_config.raywatch")
        except ConfigError as exc:
            self.reload_errors += 1
            logger.error("raywatch ignored an invalid user_config.raywatch: %s", exc)
            return False
        with self._lock:
            try:
                self._apply(new)
            except Exception as exc:
                self.reload_errors += 1
                logger.error("raywatch could not apply user_config.raywatch: %s", exc)
                return False
            self.reloads += 1
        if self.shipper.handle is not None:
            try:
                self._on_connect(self.shipper.handle)
            except Exception as exc:
                self._log.warning("raywatch could not re-register after reload: %s", exc)
        return True

    def _apply(self, new: MonitorConfig) -> None:
        old = self.config
        cap, ship = new.capture, new.shipping
        extractor = Extractor.from_config(cap)  # may raise (bad import path): nothing changed yet
        segments = SegmentBuilder(new, self.labels, extractor, fail=self.builder._failed)  # may raise too
        profile = self.builder.profile
        if new.profile_path and new.profile_path != old.profile_path:
            profile, self._profile_file_bytes = read_profile_file(new.profile_path)
            self._profile_source = "path"
            self.profile_error = None
        c = self.capture
        c.sample_rate = cap.sample_rate
        c.enabled = cap.enabled
        c.keep_results = cap.feedback
        c.bound = ship.buffer_size
        c.methods = frozenset(cap.methods)  # methods wrapped at deploy time can be narrowed, not added
        b = self.builder
        b.extractor = extractor
        segments.multiplexed_seen = b.segments.multiplexed_seen
        b.segments = segments
        b.profile = profile
        b.feedback = cap.feedback
        self.http_feedback = bool(cap.feedback and cap.feedback_route)
        b.max_predictions = cap.max_predictions
        b.max_buffer_bytes = ship.max_buffer_bytes
        b.labels.model = new.model or b.labels.deployment
        b.labels.version = new.version
        self.shipper.configure(
            max_pending_batches=ship.max_pending_batches,
            max_in_flight=ship.max_in_flight,
            max_retries=ship.max_retries,
            retry_backoff=ship.retry_backoff,
            max_backoff=ship.max_backoff,
        )
        if (new.payload_log, new.remediation) != (old.payload_log, old.remediation):
            if self.payload_log is not None:
                self.payload_log.flush()
            self.payload_log = ReplicaPayloadLog.make(new, self._payload_log_failed)
        if new.resources != old.resources:
            if self.sampler is not None:
                self.sampler.close()
            self._make_sampler(new)
            self._resources_due = 0.0
        self.config = new
        self.feedback_gate.configure(cap)
        self._calibrate()
        self.wake.set()

    # ------------------------------------------------------------------ introspection

    def status(self) -> Dict[str, Any]:
        """What this replica's monitor is doing (JSON-able)."""
        return {
            "labels": self.labels.as_dict(),
            "model_key": self.labels.model_key,
            "config": self.config.to_data(),  # secrets as their ${ENV} reference, or masked
            "buffered": len(self.capture.buffer),
            "dropped_total": self.capture.dropped + self.shipper.dropped_records,
            "payloads_dropped_total": self._payloads_dropped(),
            "payload_bound": self.capture.payload_bound,
            "payload_bytes_estimate": round(self.builder.payload_bytes),
            "redacted": dict(self.builder.redacted()),
            "profile_error": self.profile_error if self.builder.profile is None else None,
            series.CAPTURE_ERRORS_TOTAL.name: self.capture.errors + self.builder.capture_errors + self.reload_errors,
            "batches_built": self.builder.seq,
            "rows_summarized": self.builder.rows_summarized,
            "records_drained": self.records_drained,
            "flushes": self.ticks,
            "flushes_deferred": self.deferred,
            "flusher_cpu_s": self.flusher_cpu_s,
            "profile": self._profile_source if self.builder.profile is not None else None,
            "reloads": self.reloads,
            "reload_errors": self.reload_errors,
            "resources": copy.deepcopy(self._resources),
            "shipper": self.shipper.stats(),
            "payload_log": self.payload_log.stats() if self.payload_log is not None else None,
            "running": self._thread is not None and self._thread.is_alive(),
        }
