"""The request-path half of the sidecar: record one tuple per request, never raise.

:meth:`Capture.record` is everything monitoring does while a request is being served: it
reads the monotonic clock, picks up Serve's request context (a context-variable read),
decides whether this request is sampled for features, and appends one small tuple to a
bounded deque. Feature extraction, summaries, sketches and shipping all happen later on
the flusher thread (:mod:`raywatch.serve.replica`). When the deque is full the record is
dropped and counted (``dropped``); any failure inside ``record`` is counted
(``errors``) and logged at a bounded rate, never raised.

The payloads the deque holds are bounded in bytes without sizing anything here: a sampled
request keeps its payload only while fewer than ``payload_bound`` records are waiting, and
the flusher sets that bound from the byte budget and the payload size it measures off the
request path (:meth:`raywatch.serve.buffer.BatchBuilder.payload_bound`). Beyond it the
request is still recorded (latency, outcome, status), without its payload, and counted in
``payloads_dropped``: one comparison of a length the append needs anyway.

A record is a tuple ``(method, t0, t1, outcome, status, ctx, args, kwargs, result, route)``:
``t0``/``t1`` are ``time.perf_counter()`` readings, ``outcome`` is ``None`` for success or
the exception's type name, ``status`` an HTTP status or ``None``, ``ctx`` Serve's request
context object (request id, route), ``args``/``kwargs``/``result`` references kept only for
sampled requests (``None`` otherwise), and ``route`` a route template when the ASGI layer
knew it.

>>> cap = Capture(buffer_size=2)
>>> import time
>>> t0 = time.perf_counter()
>>> for _ in range(3):
...     cap.record("__call__", t0, None, None, ({"x": 1},), {}, 0.5)
>>> len(cap.buffer), cap.dropped
(2, 1)
>>> [r[0] for r in cap.drain()], len(cap.buffer)
(['__call__', '__call__'], 0)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from typing import Any, List, Optional, Tuple

from raywatch.serve.compat import request_context_var

__all__ = ["Capture", "RateLimitedLog", "Record", "current_request_context"]

logger = logging.getLogger("raywatch.serve.capture")

Record = Tuple[Any, ...]

# Fields of a record tuple (kept as module constants for readability off-path).
METHOD, T0, T1, OUTCOME, STATUS, CTX, ARGS, KWARGS, RESULT, ROUTE = range(10)

# Serve's per-request context variable (None without Ray Serve); a ContextVar.get() is ~50 ns
_REQUEST_CTX = request_context_var()


def current_request_context() -> Any:
    """Serve's ``_RequestContext`` for the running request, or None outside Serve."""
    if _REQUEST_CTX is None:
        return None
    try:
        return _REQUEST_CTX.get()
    except Exception:
        return None


class RateLimitedLog:
    """Log at most ``per_interval`` messages per ``interval`` seconds; counts the rest."""

    def __init__(self, log: logging.Logger, interval: float = 60.0, per_interval: int = 5):
        self.log = log
        self.interval = interval
        self.per_interval = per_interval
        self._window_start = 0.0
        self._in_window = 0
        self.suppressed = 0
        self._lock = threading.Lock()

    def warning(self, msg: str, *args: Any, exc_info: Any = None) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self.interval:
                if self.suppressed:
                    self.log.warning("%d similar messages suppressed in the last %.0f s", self.suppressed, self.interval)
                self._window_start = now
                self._in_window = 0
                self.suppressed = 0
            if self._in_window >= self.per_interval:
                self.suppressed += 1
                return False
            self._in_window += 1
        self.log.warning(msg, *args, exc_info=exc_info)
        return True


class Capture:
    """Bounded, lock-free-ish request recorder (deque appends are atomic under the GIL).

    Attributes read and changed by the replica monitor (hot reload): ``enabled``,
    ``sample_rate``, ``keep_results`` (keep the result of unsampled requests too, for
    feedback joins), ``bound``, ``flush_at`` and ``methods`` (the watched methods still
    recorded; ``None`` for all that were wrapped).
    """

    __slots__ = (
        "buffer",
        "bound",
        "enabled",
        "sample_rate",
        "keep_results",
        "flush_at",
        "methods",
        "wake",
        "dropped",
        "errors",
        "payload_bound",
        "payloads_dropped",
        "_log",
        "_random",
        "_clock",
        "_ctx",
    )

    def __init__(
        self,
        buffer_size: int = 100_000,
        sample_rate: float = 1.0,
        *,
        enabled: bool = True,
        keep_results: bool = False,
        flush_at: int = 1000,
        wake: Optional[threading.Event] = None,
        methods: Optional[Any] = None,
    ):
        self.buffer: deque = deque()
        self.bound = int(buffer_size)
        self.enabled = bool(enabled)
        self.sample_rate = float(sample_rate)
        self.keep_results = bool(keep_results)
        self.flush_at = int(flush_at)
        self.methods = None if methods is None else frozenset(methods)
        self.wake = wake if wake is not None else threading.Event()
        self.dropped = 0
        self.errors = 0
        self.payload_bound = self.bound  # the flusher lowers it to fit the byte budget
        self.payloads_dropped = 0
        self._log = RateLimitedLog(logger)
        self._random = random.random
        self._clock = time.perf_counter
        self._ctx = _REQUEST_CTX.get if _REQUEST_CTX is not None else (lambda: None)

    # --------------------------------------------------------------- request path

    def record(
        self,
        method: str,
        t0: float,
        outcome: Optional[str],
        status: Optional[int],
        args: Any,
        kwargs: Any,
        result: Any,
        route: Optional[str] = None,
    ) -> None:
        """Record one finished request. Never raises."""
        try:
            t1 = self._clock()
            if not self.enabled:
                return
            if self.methods is not None and method not in self.methods:
                return
            buf = self.buffer
            n = len(buf)
            if n >= self.bound:
                self.dropped += 1
                return
            rate = self.sample_rate
            if rate < 1.0 and (rate <= 0.0 or self._random() >= rate):
                args = kwargs = None
            elif n >= self.payload_bound:  # sampled, but over the byte budget
                self.payloads_dropped += 1
                args = kwargs = None
                if not self.wake.is_set():
                    self.wake.set()  # (the flusher makes room)
            if args is None:
                if not self.keep_results:
                    if status is None:  # an HTTP Response's status is kept, not the body
                        code = getattr(result, "status_code", None)
                        if type(code) is int:
                            status = code
                    result = None
            buf.append((method, t0, t1, outcome, status, self._ctx(), args, kwargs, result, route))
            if n + 1 >= self.flush_at and not self.wake.is_set():
                self.wake.set()
        except Exception as exc:  # noqa: BLE001 - capture never raises into the request
            self.failed(exc)

    def sampled(self) -> bool:
        """Decide now whether a request's payload is kept (for callers that must know early)."""
        rate = self.sample_rate
        return self.enabled and (rate >= 1.0 or (rate > 0.0 and self._random() < rate))

    def record_decided(
        self,
        method: str,
        t0: float,
        outcome: Optional[str],
        status: Optional[int],
        args: Any,
        kwargs: Any,
        result: Any,
        route: Optional[str] = None,
    ) -> None:
        """Like :meth:`record`, for a request whose sampling was decided by :meth:`sampled`
        (payload references are kept as given). Never raises.

        The checks and the append repeat :meth:`record`'s on purpose: this is the request
        path, and sharing them would cost every request one more call."""
        try:
            t1 = self._clock()
            if not self.enabled or (self.methods is not None and method not in self.methods):
                return
            buf = self.buffer
            n = len(buf)
            if n >= self.bound:
                self.dropped += 1
                return
            if n >= self.payload_bound and args is not None:
                self.payloads_dropped += 1
                args = kwargs = None
                if not self.keep_results:
                    result = None
                if not self.wake.is_set():
                    self.wake.set()
            buf.append((method, t0, t1, outcome, status, self._ctx(), args, kwargs, result, route))
            if n + 1 >= self.flush_at and not self.wake.is_set():
                self.wake.set()
        except Exception as exc:  # noqa: BLE001
            self.failed(exc)

    def failed(self, exc: BaseException) -> None:
        """Count (and log, rate-limited) a failure of monitoring code. Never raises."""
        try:
            self.errors += 1
            self._log.warning("raywatch capture failed (%s: %s); request unaffected", type(exc).__name__, exc)
        except Exception:
            pass

    # --------------------------------------------------------------- flusher side

    def drain(self, limit: Optional[int] = None) -> List[Record]:
        """Pop up to ``limit`` records (all present now by default), oldest first."""
        buf = self.buffer
        n = len(buf)
        if limit is not None:
            n = min(n, limit)
        pop = buf.popleft
        out = []
        append = out.append
        for _ in range(n):
            try:
                append(pop())
            except IndexError:  # pragma: no cover - only the flusher pops
                break
        return out
