"""The stats actor's own failures: counted by stage, logged at most once a minute per stage.

A failure inside the aggregation core (a summary that does not decode, a drift test that
raises, a checkpoint that cannot be written) never stops ingest: it is caught where it
happens, counted here under its stage and logged. Status and ``/metrics`` report the counts.

>>> f = Failures(clock=lambda: 0.0)
>>> f.fail("ingest.summary", ValueError("bad bytes"))
>>> f.fail("ingest.summary", ValueError("bad bytes"))
>>> f.counts
{'ingest.summary': 2}
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Dict

__all__ = ["Failures"]

log = logging.getLogger("raywatch.aggregate.failures")

_QUIET = ("ingest.decode",)  # stages whose failures come from outside data: no traceback
LOG_EVERY = 60.0


class Failures:
    """Failure counts by stage (``counts``); ``clock`` is monotonic seconds (log rate limit)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.counts: Dict[str, int] = {}
        self._clock = clock
        self._last_log: Dict[str, float] = {}

    def fail(self, stage: str, exc: BaseException) -> None:
        """Count (and, rate-limited, log) a failure of ``stage``."""
        self.counts[stage] = self.counts.get(stage, 0) + 1
        t = self._clock()
        if t - self._last_log.get(stage, -1e18) >= LOG_EVERY:
            self._last_log[stage] = t
            log.error("stats actor %s failed (%d times so far): %s: %s", stage, self.counts[stage], type(exc).__name__, exc,
                      exc_info=exc if stage not in _QUIET else None)

    def restore(self, counts: Dict[str, int]) -> None:
        for stage, n in counts.items():
            self.counts[stage] = self.counts.get(stage, 0) + int(n)
