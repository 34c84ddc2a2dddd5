"""Delivery: one worker thread and one queue per sink, so a failing sink delays no other.

Each notification is tried until the sink accepts it, with

* capped exponential backoff with jitter after timeouts, connection errors, protocol errors
  and 5xx (``initial_backoff · 2^(attempt-1)``, capped at ``max_backoff``; the wait is drawn
  uniformly from the upper half of that, so retries from many engines spread out);
* the receiver's ``Retry-After`` after a 429 (capped at ``max_retry_after``);
* no retry after any other 4xx, or a 3xx (redirects are not followed): the receiver's answer
  is logged;
* a per-sink rate limit (``rate_limit`` notifications per second; Slack defaults to 1).

**Sent means accepted.** The worker reports each notification's outcome to its engine
(``on_outcome``): ``delivered`` once the receiver accepted it — only then does the engine's
notification log record it, which is what dedup reads, as Alertmanager's ``nflog`` does — or
``failed`` / ``superseded``. A failed notification is *not* logged as sent, so the group's
next flush (each ``group_interval``) sends the group's state again until a receiver accepts
it. A queued or retrying notification that a newer one of the same group replaces (or whose
news is void: its alerts resolved before anyone was told) is dropped as ``superseded``
before its next attempt, never dead-lettered. A sink whose transport acknowledges nothing
(DogStatsD over UDP, :attr:`~raywatch.sinks.base.Sink.acknowledged` False) counts its
notifications as *best effort*, never as sent.

What is still not delivered after ``max_attempts``, what is refused, what overflows the
queue and what is still queued when the engine closes also goes to the dead-letter file
(:mod:`raywatch.alerts.deadletter`), in case the engine does not live to retry it:
delivery is at least once, never silently dropped. Failures are counted per sink and stage
(``queue``, ``send``, ``dead_letter``).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from raywatch.alerts.deadletter import DeadLetterFile
from raywatch.alerts.metrics import AlertMetrics
from raywatch.sinks.notification import Notification
from raywatch.sinks.base import DeliveryError, PermanentError, RetryAfter, Sink

log = logging.getLogger("raywatch.alerts.delivery")

__all__ = ["SinkWorker", "deliver_with_retries", "backoff_delay", "RateLimiter", "Superseded",
           "DELIVERED", "FAILED", "SUPERSEDED"]

_STOP = object()
DELIVERED, FAILED, SUPERSEDED = "delivered", "failed", "superseded"
"""The outcomes a worker reports (``on_outcome(sink name, notification, outcome)``)."""


class Superseded(DeliveryError):
    """A newer notification of the same group replaced this one before it was delivered."""

    retryable = False


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
                         rng: random.Random = random,
                         cancelled: Callable[[], bool] = lambda: False) -> Tuple[bool, Optional[DeliveryError], int]:
    """Try to deliver ``n`` until accepted, refused, out of attempts or ``cancelled()``.

    Returns (delivered, last error, attempts); a cancelled notification's error is
    :class:`Superseded`. ``wait(seconds)`` returns False to abandon (the engine is shutting
    down). "Delivered" by a sink that acknowledges nothing (``sink.acknowledged`` False) is
    counted as best effort, not as sent.
    """
    attempts = 0
    while True:
        if cancelled():
            return False, Superseded("superseded by a newer notification of its group"), attempts
        if limiter is not None:
            d = limiter.delay()
            if d > 0 and not wait(d):
                return False, DeliveryError("not delivered before shutdown"), attempts
            if cancelled():
                return False, Superseded("superseded by a newer notification of its group"), attempts
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
                (metrics.sent if sink.acknowledged else metrics.best_effort).labels(sink=sink.name).inc()
            if attempts > 1:
                log.info("sink %s: notification %s delivered after %d attempts", sink.name, n.id, attempts)
            return True, None, attempts
        if metrics is not None:
            metrics.failure(sink.name, "send")
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


Outcome = Callable[[str, Notification, str], None]


class SinkWorker:
    """The queue and thread that deliver one sink's notifications in order.

    ``on_outcome(sink name, notification, outcome)`` is called from the worker thread once
    per submitted notification, before it counts as handled (:meth:`idle`): ``delivered``,
    ``failed`` (refused, out of attempts, queue full, shutdown: dead-lettered) or
    ``superseded`` (:meth:`supersede`).
    """

    def __init__(self, sink: Sink, metrics: AlertMetrics, dead_letter: DeadLetterFile,
                 on_outcome: Optional[Outcome] = None):
        self.sink = sink
        cfg = sink.cfg
        self.retry = cfg.retry
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.on_outcome = on_outcome
        self.limiter = RateLimiter(cfg.rate_limit)
        self.queue: "queue.Queue[Any]" = queue.Queue(maxsize=int(cfg.queue_size))
        self._abort = threading.Event()
        self._nudge = threading.Event()   # wakes a backoff wait: shutdown, or a notification superseded
        self._closing = False
        self._handed_over = False         # the engine's successor resends what is queued: drop, never dead-letter
        self._rng = random.Random()
        # queued or in flight, by id: saved with the engine's state so that a restart resends
        # them (at least once: one may have been delivered just before the state was saved)
        self.outbox: Dict[str, Notification] = {}
        self._superseded: Set[str] = set()
        self._outbox_lock = threading.Lock()
        self._current: Optional[str] = None
        metrics.init_sink(sink.name)
        self._qlen = metrics.queue_length.labels(sink=sink.name)
        self.thread = threading.Thread(target=self._run, name=f"raywatch-sink-{sink.name}", daemon=True)
        self.thread.start()

    def submit(self, n: Notification) -> bool:
        """Queue ``n`` (never blocks). A full queue sends it to the dead-letter file."""
        if self._closing:
            self._dead(n, "engine closed before the notification was queued", 0)
            self._report(n, FAILED)
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
            self.metrics.failure(self.sink.name, "queue")
            self._dead(n, "queue full", 0)
            self._report(n, FAILED)
            return False
        self._qlen.inc()
        return True

    def supersede(self, notification_id: str) -> bool:
        """Drop a queued or retrying notification before its next attempt (one being sent
        right now completes). True if it was still waiting or in flight."""
        with self._outbox_lock:
            if notification_id not in self.outbox:
                return False
            self._superseded.add(notification_id)
        self._nudge.set()
        return True

    def _is_superseded(self, notification_id: str) -> bool:
        with self._outbox_lock:
            return notification_id in self._superseded

    def _report(self, n: Notification, outcome: str) -> None:
        if self.on_outcome is None or self._handed_over:
            return
        try:
            self.on_outcome(self.sink.name, n, outcome)
        except Exception:  # pragma: no cover - the engine's bookkeeping must not kill the worker
            log.exception("sink %s: outcome of notification %s not recorded", self.sink.name, n.id)

    def _dead(self, n: Notification, reason: str, attempts: int, status: Optional[int] = None) -> None:
        if self._handed_over:
            return  # the successor engine has it in its outbox
        self.metrics.failed.labels(sink=self.sink.name).inc()
        if self.dead_letter.write(self.sink.name, self.sink.type, n, self.sink.redact(reason), attempts, status):
            self.metrics.dead_lettered.labels(sink=self.sink.name).inc()
        elif self.dead_letter.configured:
            self.metrics.failure(self.sink.name, "dead_letter")

    def _wait(self, delay: float) -> bool:
        """Wait ``delay`` s; False on shutdown, True early when the current one is superseded."""
        end = time.monotonic() + delay
        while True:
            if self._abort.is_set():
                return False
            if self._current is not None and self._is_superseded(self._current):
                return True
            left = end - time.monotonic()
            if left <= 0:
                return True
            self._nudge.wait(left)
            self._nudge.clear()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is _STOP:
                    return
                self._qlen.dec()
                if self._abort.is_set():
                    self._dead(item, "not delivered before shutdown", 0)
                    self._report(item, FAILED)
                    continue
                self._current = item.id
                ok, err, attempts = deliver_with_retries(
                    self.sink, item, self.retry, metrics=self.metrics, limiter=self.limiter,
                    wait=self._wait, rng=self._rng, cancelled=lambda: self._is_superseded(item.id))
                if ok:
                    self._report(item, DELIVERED)
                elif isinstance(err, Superseded):
                    self.metrics.superseded.labels(sink=self.sink.name).inc()
                    log.info("sink %s: notification %s superseded before it was delivered", self.sink.name, item.id)
                    self._report(item, SUPERSEDED)
                else:
                    reason = str(err) if err is not None else "not delivered"
                    if self._abort.is_set() and err is not None and err.retryable:
                        reason = f"not delivered before shutdown (last error: {err})"
                    self._dead(item, reason, attempts, getattr(err, "status", None))
                    self._report(item, FAILED)
            except Exception:  # pragma: no cover - keep the worker alive whatever happens
                log.exception("sink %s: delivery worker error", self.sink.name)
            finally:
                self._current = None
                if item is not _STOP:
                    with self._outbox_lock:
                        self.outbox.pop(item.id, None)
                        self._superseded.discard(item.id)
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
            self._nudge.set()
            self.thread.join(float(self.sink.cfg.timeout) + 1.0)
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001
            log.exception("sink %s: error while closing", self.sink.name)

    def close(self, timeout: float) -> None:
        """Deliver what is queued for up to ``timeout`` s; dead-letter the rest."""
        self.begin_close()
        self.finish_close(time.monotonic() + max(0.0, timeout))

    def hand_over(self) -> None:
        """Stop at once without dead-lettering: the engine's successor (same configuration,
        rotated secrets) resends what is queued or in flight from the saved outbox. A send in
        progress completes (it may reach the old address once more: at least once)."""
        self._handed_over = True
        self._abort.set()
        self._nudge.set()
        self.begin_close()
