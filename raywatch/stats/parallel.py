"""One thread pool for the column kernels of large batches, sized to the cores.

:meth:`raywatch.stats.profile.Profile.summarize` summarizes a batch of at least
:data:`PARALLEL_MIN_ROWS` rows on every core: each column is a task (numpy releases the GIL in
the sorts, searches, counts and reductions a column's kernel spends its time in). Smaller
batches — a replica's flushes, whose kernel is :func:`raywatch.stats.summary.numerical_states`
below 4,096 rows — never touch the pool: for them a thread hand-off would cost more than it
saves, and a replica's cores belong to its model.

The pool is made once, on first use (by a large batch, so never on a request path), sized to
the cores this process may run on; its threads are named ``raywatch-columns``. Tasks never
wait on each other, so callers may share the pool from several threads.

>>> workers() >= 1
True
>>> p = pool()
>>> p is None or (p is pool() and p.submit(sum, [1, 2]).result() == 3)
True
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

__all__ = ["PARALLEL_MIN_ROWS", "workers", "pool"]

# batches of at least this many rows are summarized on every core (a column's kernel then
# costs ~0.3 ms or more, against ~20 µs for a hand-off to the pool)
PARALLEL_MIN_ROWS = 32_768

_POOL: Optional[ThreadPoolExecutor] = None
_LOCK = threading.Lock()


def workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def pool() -> Optional[ThreadPoolExecutor]:
    """The shared pool (made on the first call), or None on a single core."""
    global _POOL
    if _POOL is None:
        n = workers()
        if n < 2:
            return None
        with _LOCK:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="raywatch-columns")
    return _POOL
