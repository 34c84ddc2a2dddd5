"""Column specs: how one reference column is binned (edges, or categories and overflow).

:func:`fit_column` fits a :class:`ColumnSpec` to one reference column of a known kind (see
:mod:`raywatch.stats.profile` for what each kind keeps).

>>> import numpy as np
>>> spec = fit_column("x", "numerical", np.arange(100.0), bins=4, max_categories=10)
>>> spec.edges.tolist(), spec.n_bins
([24.75, 49.5, 74.25], 4)
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Set

import numpy as np

from raywatch.stats.columns import encode_categorical, encode_numerical, normalize_label, type_family

__all__ = ["ColumnSpec", "fit_column", "label_counts", "categorical_spec", "no_finite_numbers", "MAX_KNOWN_CATEGORIES"]

log = logging.getLogger("raywatch.stats.spec")

MAX_KNOWN_CATEGORIES = 10_000


@dataclass
class ColumnSpec:
    """How one column is binned: edges (numerical) or categories (categorical, boolean)."""

    name: str
    kind: str
    edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    lo: float = math.nan  # reference min (finite values)
    hi: float = math.nan  # reference max
    categories: List[Hashable] = field(default_factory=list)  # the top labels, in bin order
    known: List[Hashable] = field(default_factory=list)  # further labels seen (overflow bucket)
    families: Set[str] = field(default_factory=set)
    singletons: int = 0

    def __post_init__(self) -> None:
        self.lookup: Dict[Hashable, int] = {}
        if self.kind != "numerical":
            n = len(self.categories)
            for label in self.known:
                self.lookup[label] = n
            for i, label in enumerate(self.categories):
                self.lookup[label] = i

    @property
    def n_bins(self) -> int:
        return self.edges.size + 1 if self.kind == "numerical" else len(self.categories) + 1


def label_counts(name: str, arr: np.ndarray) -> "Counter[Hashable]":
    """Each label of a column (normalised: see ``normalize_label``) and how often it occurs,
    missing values left out. Counters of parts of a column add up to the whole column's."""
    k = arr.dtype.kind
    if k in "US":
        uniq, counts = np.unique(arr, return_counts=True)
        return Counter({normalize_label(u): int(c) for u, c in zip(uniq.tolist(), counts.tolist())})
    if k in "iufb":
        if k == "f":
            arr = arr[~np.isnan(arr)]
        uniq, counts = np.unique(arr, return_counts=True)
        return Counter({normalize_label(u): int(c) for u, c in zip(uniq.tolist(), counts.tolist())})
    counter: Counter[Hashable] = Counter()
    for v in arr:
        if v is None or (isinstance(v, float) and v != v):
            continue
        if type_family(v) == "other":
            raise TypeError(
                f"column {name!r}: values of type {type(v).__name__} cannot be categories; "
                "use strings, integers or booleans"
            )
        counter[normalize_label(v)] += 1
    return counter


def _sort_key(item: Any) -> Any:
    label, count = item
    return (-count, type(label).__name__, str(label))


def fit_column(name: str, kind: str, arr: np.ndarray, bins: int, max_categories: int) -> ColumnSpec:
    if kind == "numerical":
        x, wrong = encode_numerical(arr)
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            raise no_finite_numbers(name, wrong)
        qs = np.arange(1, bins) / bins
        edges = np.unique(np.quantile(finite, qs))
        lo, hi = float(finite.min()), float(finite.max())
        if lo == hi:
            log.info("reference column %r is constant (%r); any other value is drift", name, lo)
        return ColumnSpec(name, kind, edges=edges.astype(np.float64), lo=lo, hi=hi)
    if kind == "boolean":
        codes = encode_categorical(arr, {False: 0, True: 1}, {"bool", "number"}, 2)
        if not np.any((codes == 0) | (codes == 1)):
            raise ValueError(f"reference column {name!r} has no boolean values; fix the data or drop it")
        return ColumnSpec(name, kind, categories=[False, True], families={"bool", "number"})
    return categorical_spec(name, label_counts(name, arr), max_categories)


def no_finite_numbers(name: str, wrong: int) -> ValueError:
    """The error of a numerical reference column without a finite number."""
    return ValueError(
        f"reference column {name!r} has no finite numbers"
        + (f" ({wrong} values of the wrong type)" if wrong else "")
        + "; fix the data, declare its kind, or drop it"
    )


def categorical_spec(name: str, counter: "Counter[Hashable]", max_categories: int) -> ColumnSpec:
    """The spec of a categorical column from its :func:`label_counts`: the ``max_categories``
    most frequent labels (ties by type name and text), up to 10,000 further known labels,
    the type families seen and the number of labels seen once."""
    if not counter:
        raise ValueError(f"reference column {name!r} has no values (all missing); fix the data or drop it")
    ranked = sorted(counter.items(), key=_sort_key)
    top = [label for label, _ in ranked[:max_categories]]
    known = [label for label, _ in ranked[max_categories:MAX_KNOWN_CATEGORIES]]
    families = {type_family(label) for label in counter}
    singletons = sum(1 for c in counter.values() if c == 1)
    return ColumnSpec(name, "categorical", categories=top, known=known, families=families, singletons=singletons)
