"""A bounded uniform sample that merges soundly: bottom-k sampling.

Every value carries a random key drawn uniformly from (0, 1); the sample keeps the ``k``
values with the smallest keys. Because keys are independent of values, the kept values
are a uniform random sample without replacement of all values seen, and the union of two
samples cut back to the ``k`` smallest keys is again exactly that for the combined stream
— so merging is associative and commutative and summaries from many replicas combine into
a sample of the whole window (Cohen & Kaplan 2007).

Drawing ``n`` keys to keep ``k`` would cost O(n). :func:`draw` instead draws the ``k``
smallest of ``n`` uniform keys directly (their joint law is that of the first ``k`` of
``n + 1`` normalized exponential spacings, Rényi's representation) and hands them to a
uniformly random ``k``-subset of the rows in random order, which has exactly the same
distribution as keying every row. Cost: O(k).

References
----------
Cohen, E., Kaplan, H. (2007). Summarizing data using bottom-k sketches. PODC '07.
Rényi, A. (1953). On the theory of order statistics. Acta Math. Hung. 4.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = draw(np.arange(1000.0), 5, rng)
>>> b = draw(np.arange(1000.0, 1010.0), 5, rng)
>>> values, keys = merge(a, b, 5)
>>> len(values), bool(np.all(np.diff(keys) > 0))
(5, True)
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["draw", "merge", "smallest"]

Sample = Tuple[np.ndarray, np.ndarray]


def draw(values: np.ndarray, k: int, rng: np.random.Generator) -> Sample:
    """A bottom-``k`` sample of ``values``: ``(values, keys)`` sorted by key."""
    n = int(values.shape[0])
    k = min(int(k), n)
    if k <= 0:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64)
    spacings = rng.standard_exponential(k)
    head = np.cumsum(spacings)
    rest = rng.standard_gamma(n + 1 - k) if n + 1 - k > 0 else 0.0
    keys = head / (head[-1] + rest)
    idx = rng.choice(n, size=k, replace=False, shuffle=True) if k < n else rng.permutation(n)
    return np.asarray(values[idx], dtype=np.float64), keys


def merge(a: Sample, b: Sample, k: int) -> Sample:
    """The ``k`` smallest keys of the union of two samples, sorted by key."""
    keys = np.concatenate((a[1], b[1]))
    keep = smallest(keys, k)
    return np.concatenate((a[0], b[0]))[keep], keys[keep]


def smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """The positions of the ``k`` smallest keys (of each row, for a 2-D array), in key order:
    the bottom-``k`` selection every sample here makes (one ``argpartition``, one ``argsort``
    of the ``k`` kept).

    >>> smallest(np.array([0.5, 0.1, 0.9, 0.3]), 2).tolist(), smallest(np.array([[0.2, 0.1], [0.3, 0.4]]), 5).tolist()
    ([1, 3], [[1, 0], [0, 1]])
    """
    n = keys.shape[-1]
    k = max(0, min(int(k), n))
    if k == 0:
        return np.empty(keys.shape[:-1] + (0,), dtype=np.intp)
    part = np.argpartition(keys, k - 1, axis=-1)[..., :k] if k < n else np.broadcast_to(np.arange(n), keys.shape)
    order = np.argsort(np.take_along_axis(keys, part, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1)
