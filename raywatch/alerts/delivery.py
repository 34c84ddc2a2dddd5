"""Delivery: one worker thread and one queue per sink, so a failing sink delays no other.

Each notification is tried until the sink accepts it, with

* capped exponential backoff with jitter after timeouts, connection errors and 5xx
  (``initial_backoff · 2^(attempt-1)``, capped at ``max_backoff``; the wait is drawn
  uniformly from the upper half of that, so retries from many engines spread out);
* the receiver's ``Retry-After`` after a 429 (capped at ``max_retry_after``);
* no retry after any other 4xx: the receiver's answer is logged;
* a per-sink rate limit (``rate_limit`` notifications per second; Slack defaults to 1).

What is still not delivered after ``max_attempts``, what is refused, what overflows the
queue and what is still queued when the engine closes goes to the dead-letter file
(:mod:`raywatch.alerts.deadletter`): delivery is at least once, never silently dropped.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from raywatch.alerts.deadletter import DeadLetterFile
from raywatch.alerts.metrics import AlertMetrics
from raywatch.sinks.notification import Notification
from raywatch.sinks.base import DeliveryError, PermanentError, RetryAfter, Sink

log = logging.getLogger("raywatch.alerts.delivery")

__all__ = ["SinkWorker", "deliver_with_retries", "backoff_delay", "RateLimiter"]

_STOP = object()


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random = random) -> float:
    """Wait before retry number ``attempt`` (1-based): capped exponential, jittered.

    >>> rng = random.Random(0)
    >>> [round(backoff_delay(a, 0.5, 4.0, rng), 2) for a in (1, 2, 3, 4, 5, 9)]
    [0.46, 0.88, 1.42, 2.52, 3.02, 2.81]
    >>> all(2.0 <= backoff_delay(9, 0.5, 4.0) <= 4.0 for _ in range(100))  # capped
    True
    """
    d = min(cap, initial * (2 ** (attempt - 1)))
    return d / 2 + rng.uniform(0, d / 2)


class RateLimiter:
    """Spaces calls at least ``1/rate`` seconds apart (monotonic clock)."""

    def __init__(self, rate: Optional[float]):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0

    def delay(self) -> float:
        if not self.interval:
            return 0.0
        return max(0.0, self._next - time.monotonic())

    def mark(self) -> None:
        if self.interval:
            self._next = time.monotonic() + self.interval


Waiter = Callable[[float], bool]


def _sleep(delay: float) -> bool:
    time.sleep(delay)
    return True


def deliver_with_retries(sink: Sink, n: Notification, retry: Any, *, metrics: Optional[AlertMetrics] = None,
                         limiter: Optional[RateLimiter] = None, wait: Waiter = _sleep,
                         rng: random.Random = random) -> Tuple[bool, Optional[DeliveryError], int]:
    """Try to deliver ``n`` until accepted, refused or out of attempts.

    Returns (delivered, last error, attempts). ``wait(seconds)`` returns False to abandon
    (the engine is shutting down).
    """
    attempts = 0
    while True:
        if limiter is not None:
            d = limiter.delay()
            if d > 0 and not wait(d):
                return False, DeliveryError("not delivered before shutdown"), attempts
            limiter.mark()
        attempts += 1
        try:
            sink.send(n)
        except DeliveryError as exc:
            err = exc
        except Exception as exc:  # a bug in a sink must not kill its worker
            # no traceback in the log: its text would carry the message unredacted
            err = PermanentError(f"{type(exc).__name__}: {sink.redact(str(exc))}")
            log.error("sink %s raised unexpectedly: %s", sink.name, err)
        else:
            if metrics is not None:
                metrics.sent.labels(sink=sink.name).inc()
            if attempts > 1:
                log.info("sink %s: notification %s delivered after %d attempts", sink.name, n.id, attempts)
            return True, None, attempts
        msg = sink.redact(str(err))
        if not err.retryable:
            log.error("sink %s refused notification %s (not retried): %s%s", sink.name, n.id, msg,
                      f"; receiver answered: {sink.redact(err.answer)}" if err.answer else "")
            return False, err, attempts
        if attempts >= retry.max_attempts:
            log.error("sink %s: giving up on notification %s after %d attempts: %s", sink.name, n.id, attempts, msg)
            return False, err, attempts
        if isinstance(err, RetryAfter) and err.retry_after is not None:
            delay = min(float(err.retry_after), float(retry.max_retry_after))
        else:
            delay = backoff_delay(attempts, float(retry.initial_backoff), float(retry.max_backoff), rng)
        if metrics is not None:
            metrics.retried.labels(sink=sink.name).inc()
        log.warning("sink %s: attempt %d for notification %s failed (%s); retrying in %.2fs",
                    sink.name, attempts, n.id, msg, delay)
        if not wait(delay):
            return False, err, attempts


class SinkWorker:
    """The queue and thread that deliver one sink's notifications in order."""

    def __init__(self, sink: Sink, metrics: AlertMetrics, dead_letter: DeadLetterFile):
        self.sink = sink
        cfg = sink.cfg
        self.retry = cfg.retry
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.limiter = RateLimiter(cfg.rate_limit)
        self.queue: "queue.Queue[Any]" = queue.Queue(maxsize=int(cfg.queue_size))
        self._abort = threading.Event()
        self._closing = False
        self._rng = random.Random()
        # queued or in flight, by id: saved with the engine's state so that a restart resends
        # them (at least once: one may have been delivered just before the state was saved)
        self.outbox: Dict[str, Notification] = {}
        self._outbox_lock = threading.Lock()
        metrics.init_sink(sink.name)
        self._qlen = metrics.queue_length.labels(sink=sink.name)
        self.thread = threading.Thread(target=self._run, name=f"raywatch-sink-{sink.name}", daemon=True)
        self.thread.start()

    def submit(self, n: Notification) -> bool:
        """Queue ``n`` (never blocks). A full queue sends it to the dead-letter file."""
        if self._closing:
            self._dead(n, "engine closed before the notification was queued", 0)
            return False
        with self._outbox_lock:
            self.outbox[n.id] = n
        try:
            self.queue.put_nowait(n)
        except queue.Full:
            with self._outbox_lock:
                self.outbox.pop(n.id, None)
            log.error("sink %s: queue full (%d); notification %s goes to the dead-letter file",
                      self.sink.name, self.queue.maxsize, n.id)
            self._dead(n, "queue full", 0)
            return False
        self._qlen.inc()
        return True

    def _dead(self, n: Notification, reason: str, attempts: int, status: Optional[int] = None) -> None:
        self.metrics.failed.labels(sink=self.sink.name).inc()
        if self.dead_letter.write(self.sink.name, self.sink.type, n, self.sink.redact(reason), attempts, status):
            self.metrics.dead_lettered.labels(sink=self.sink.name).inc()

    def _wait(self, delay: float) -> bool:
        return not self._abort.wait(delay)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is _STOP:
                    return
                self._qlen.dec()
                if self._abort.is_set():
                    self._dead(item, "not delivered before shutdown", 0)
                    continue
                ok, err, attempts = deliver_with_retries(
                    self.sink, item, self.retry, metrics=self.metrics, limiter=self.limiter,
                    wait=self._wait, rng=self._rng)
                if not ok:
                    reason = str(err) if err is not None else "not delivered"
                    if self._abort.is_set() and err is not None and err.retryable:
                        reason = f"not delivered before shutdown (last error: {err})"
                    self._dead(item, reason, attempts, getattr(err, "status", None))
            except Exception:  # pragma: no cover - keep the worker alive whatever happens
                log.exception("sink %s: delivery worker error", self.sink.name)
            finally:
                if item is not _STOP:
                    with self._outbox_lock:
                        self.outbox.pop(item.id, None)
                self.queue.task_done()

    def pending(self) -> List[Notification]:
        """Notifications queued or being delivered, oldest first."""
        with self._outbox_lock:
            return sorted(self.outbox.values(), key=lambda n: n.created_at)

    def idle(self, timeout: float) -> bool:
        """Wait until everything queued so far has been handled; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.queue.all_tasks_done.wait(left)
        return True

    def begin_close(self) -> None:
        """Stop accepting notifications; the worker finishes what is queued."""
        if not self._closing:
            self._closing = True
            self.queue.put(_STOP)

    def finish_close(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic); then dead-letter whatever is left."""
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            self._abort.set()
            self.thread.join(float(self.sink.cfg.timeout) + 1.0)
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001
            log.exception("sink %s: error while closing", self.sink.name)

    def close(self, timeout: float) -> None:
        """Deliver what is queued for up to ``timeout`` s; dead-letter the rest."""
        self.begin_close()
        self.finish_close(time.monotonic() + max(0.0, timeout))
