"""Tree merge: combine many mergeable parts pairwise, in a balanced tree, as they arrive.

Parts (window summaries, fit parts) come from blocks in whatever order the engine finishes
them. :class:`TreeMerge` folds them like a binary counter: a new part merges with the
pending part of its level, and the result moves one level up. Each part is merged about
log2(n) times, the pending parts are at most log2(n) at any time (memory does not grow
with the number of blocks), and floating-point sums are combined in a balanced tree, whose
rounding error grows with log2(n) rather than n. Counts merge exactly in any order.

>>> m = TreeMerge(lambda a, b: a + b)
>>> for part in [[1], [2], [3], [4], [5]]:
...     m.add(part)
>>> m.result(), m.parts, m.depth
([1, 2, 3, 4, 5], 5, 3)
>>> tree_merge([[1], [2], [3]], lambda a, b: a + b)
[1, 2, 3]
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterable, List, Optional, TypeVar

__all__ = ["TreeMerge", "tree_merge"]

T = TypeVar("T")


class TreeMerge(Generic[T]):
    """Balanced pairwise merging of parts added one by one (see the module docstring).
    ``merge(a, b)`` returns the merge of two parts (it may not change them)."""

    def __init__(self, merge: Callable[[T, T], T]):
        self._merge = merge
        self._levels: List[Optional[T]] = []
        self.parts = 0

    def add(self, part: T) -> None:
        self.parts += 1
        level = 0
        while level < len(self._levels) and self._levels[level] is not None:
            part = self._merge(self._levels[level], part)  # the older part first
            self._levels[level] = None
            level += 1
        if level == len(self._levels):
            self._levels.append(None)
        self._levels[level] = part

    @property
    def depth(self) -> int:
        """Levels of the tree so far."""
        return len(self._levels)

    def result(self) -> Optional[T]:
        """The merge of every part added (None when none was), in the order they were added."""
        out: Optional[T] = None
        for part in self._levels:
            if part is not None:
                out = part if out is None else self._merge(part, out)
        return out


def tree_merge(parts: Iterable[T], merge: Callable[[T, T], T]) -> Optional[T]:
    """The balanced merge of ``parts`` (None when there are none)."""
    m: TreeMerge[Any] = TreeMerge(merge)
    for part in parts:
        m.add(part)
    return m.result()
