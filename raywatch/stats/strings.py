"""Tallying a large column of short labels against a profile's categories, exactly and fast.

numpy compares unicode strings element by element at ~5 ns each, so
:func:`raywatch.stats.columns.count_strings` (one comparison pass per known label) costs ~30 ms
for a million rows and five labels. Most labels are short and Latin-1 (``"fr"``, ``"mobile"``,
``"visa"``). For those, :func:`tally_short_strings` packs each value's code points into one
64-bit integer — injective for strings of at most 8 code points below 256, with numpy's own
equality (trailing NULs are padding in numpy strings and here alike) — and counts the distinct
integers with one ``np.unique``: ~9 ms, and numpy releases the GIL throughout, so columns
summarized on the shared pool (:mod:`raywatch.stats.parallel`) run side by side.

The tally is :func:`~raywatch.stats.columns.count_strings`'s (tested equal): the count of each
code ``c`` at index ``c + 3``, unseen labels at ``unseen + 3``. ``None`` when the fast path does
not apply (not a numpy unicode array, a reference with numbers among its categories — those
compare by normalised text, ``"75001"`` is 75001 —, longer values, code points of 256 or more,
or more than 64 known labels): the caller falls back to ``count_strings``.

>>> import numpy as np
>>> arr = np.array(["fr", "de", "fr", "it", ""])
>>> tally_short_strings(arr, {"fr": 0, "de": 1, "": 2}, {"str"}, 4).tolist()
[0, 0, 0, 2, 1, 1, 0, 1]
"""

from __future__ import annotations

from typing import Hashable, Mapping, Optional, Set, Tuple

import numpy as np

__all__ = ["tally_short_strings", "short_string_codes", "MIN_ROWS"]

MIN_ROWS = 4096  # below this, count_strings' few comparisons cost less than packing
_MAX_CHARS = 8
_MAX_LABELS = 64


def _pack(codepoints: np.ndarray) -> np.ndarray:
    """Rows of at most 8 code points below 256 (uint32) → one uint64 per row."""
    n, chars = codepoints.shape
    out = np.zeros((n, _MAX_CHARS), dtype=np.uint8)
    np.copyto(out[:, :chars], codepoints, casting="unsafe")
    return out.view(np.uint64).reshape(n)


def _points(arr: np.ndarray, lookup: Mapping[Hashable, int], families: Set[str]) -> Optional[Tuple[np.ndarray, int, list]]:
    """``(code points, characters, string labels)`` of a numpy unicode array of short Latin-1
    values, or None when the packed path does not apply (see the module docstring)."""
    if arr.dtype.kind != "U" or "str" not in families or "number" in families or arr.ndim != 1:
        return None
    chars = arr.dtype.itemsize // 4
    labels = [(key, code) for key, code in lookup.items() if isinstance(key, str)]
    if chars == 0 or chars > _MAX_CHARS or len(labels) > _MAX_LABELS:
        return None
    points = np.ascontiguousarray(arr).view(np.uint32).reshape(arr.shape[0], chars)
    if points.size and int(points.max()) >= 256:
        return None
    return points, chars, labels


def tally_short_strings(
    arr: np.ndarray, lookup: Mapping[Hashable, int], families: Set[str], unseen: int
) -> Optional[np.ndarray]:
    """The tally of ``encode_categorical``'s codes for a numpy unicode array of short Latin-1
    values, or None when this path does not apply (see the module docstring)."""
    got = _points(arr, lookup, families)
    if got is None:
        return None
    points, chars, labels = got
    keys, counts = np.unique(_pack(points), return_counts=True)
    found = dict(zip(keys.tolist(), counts.tolist()))
    tally = np.zeros(unseen + 4, dtype=np.int64)
    for label, code in labels:
        # a label longer than the values, or beyond Latin-1, matches none of them
        if len(label) <= chars and all(ord(ch) < 256 for ch in label):
            key = int(_pack(np.array([[ord(ch) for ch in label] + [0] * (chars - len(label))], dtype=np.uint32))[0])
            tally[code + 3] += found.get(key, 0)
    tally[unseen + 3] = int(arr.shape[0]) - int(tally.sum())
    return tally


def short_string_codes(arr: np.ndarray, lookup: Mapping[Hashable, int], families: Set[str], unseen: int) -> Optional[np.ndarray]:
    """``encode_categorical``'s code of every value of a numpy unicode array of short Latin-1
    values (``unseen`` for a value no label matches), row-aligned, from one packing and one
    binary search among the packed labels; None where :func:`tally_short_strings` does not
    apply. Grouped summaries (:mod:`raywatch.stats.grouped`) ``bincount`` these per group."""
    got = _points(arr, lookup, families)
    if got is None:
        return None
    points, chars, labels = got
    keys, codes = [], []
    for label, code in labels:
        if len(label) <= chars and all(ord(ch) < 256 for ch in label):
            keys.append(int(_pack(np.array([[ord(ch) for ch in label] + [0] * (chars - len(label))], dtype=np.uint32))[0]))
            codes.append(code)
    packed = _pack(points)
    if not keys:
        return np.full(arr.shape[0], unseen, dtype=np.intp)
    if chars <= 2:  # values of one or two code points pack below 65,536: a lookup table
        table = np.full(1 << (8 * chars), unseen, dtype=np.intp)
        table[np.array(keys, dtype=np.uint64)] = codes
        return table[packed]
    rank = np.argsort(np.array(keys, dtype=np.uint64), kind="stable")
    sorted_keys = np.array(keys, dtype=np.uint64)[rank]
    sorted_codes = np.array(codes, dtype=np.intp)[rank]
    i = np.minimum(sorted_keys.searchsorted(packed), sorted_keys.size - 1)
    return np.where(sorted_keys[i] == packed, sorted_codes[i], unseen)
