"""Segments: one accumulator per value of a segment column, top K by traffic plus ``__other__``.

A :class:`Segments` container keeps, for each segment column (a feature such as
``country``, or a request attribute such as the route, the model version, the replica or
the multiplexed model id), one mergeable accumulator per *kept* value and one shared
``__other__`` bucket for every other value. Any object with ``merge(other)`` returning
the merged accumulator is an accumulator: a :class:`~raywatch.stats.summary.WindowSummary`,
a latency sketch, performance or fairness counts. For each column the buckets partition
the rows: the kept segments' rows plus ``__other__``'s rows are every row, so merging the
buckets of any one column gives the segment-less accumulator back (:meth:`Segments.total`).

Parameters
----------
k
    How many values a column keeps (default 20). Memory is at most ``k + 1`` accumulators
    per column plus a 4 × 256 count-min sketch, whatever the number of distinct values.

Which values are kept
---------------------
* When a batch is built (:meth:`Segments.build`, once per replica flush), the values named
  in ``prefer`` come first (the configured values, then the labels the replica kept in its
  previous flush, so that the set stays stable), then the most frequent values of the batch
  (ties: first seen). Every other value's rows go to ``__other__``.
* When two containers merge (replicas into a window, windows into a rolling view), every
  kept value's accumulators merge exactly; if a column then holds more than ``k`` values,
  the ``k`` with the most *tracked* rows stay (ties: the smaller label) and the others'
  accumulators are merged into ``__other__``. Merging is commutative and, for the values
  that stay kept, exact in any order; which values stay can depend on the merge order only
  for values that compete at the ``k``-th place.

What a figure means when a value enters the top K late
-------------------------------------------------------
A value that was folded into ``__other__`` in some inputs (a batch where it was rare, or a
merge it lost) keeps those rows in ``__other__``: rows cannot be taken back out of a
merged summary. So a kept segment's accumulator is *exactly* the rows of that value in the
inputs where it was tracked, never a row of another value; it may miss rows of its own.
:meth:`Segments.missed_rows` bounds them: every value folded into ``__other__`` is counted
in the column's count-min sketch, so ``missed_rows`` is an upper bound (never an
underestimate; zero means the segment is complete) on how many of the segment's rows sit in
``__other__``. ``__other__`` holds the rows of every non-kept value plus those missed rows.

Labels
------
Values become bounded string labels by :func:`raywatch.stats.labels.segment_label`
(``None``/NaN → ``__missing__``, which competes like any value; long values → head + digest;
with a ``key``, a keyed digest, for protected attributes).

State is data: :meth:`Segments.to_dict` is JSON-able (a ``WindowSummary`` travels as the
base64 of its ``to_bytes``) and :meth:`Segments.from_dict` checks every bound it reads.

>>> import numpy as np
>>> from raywatch.stats.grouped import summarize_segments
>>> from raywatch.stats.profile import Profile
>>> profile = Profile.fit({"x": np.arange(100.0)}, bins=4, seed=0)
>>> batch = {"x": [1.0, 2.0, 3.0, 4.0, 5.0]}
>>> seg = summarize_segments(profile, batch, {"country": ["fr", "fr", "de", "it", None]}, k=2, seed=0)
>>> seg.labels("country"), seg.rows("country", "fr"), seg.rows("country", OTHER)
(['fr', 'de'], 2, 2)
>>> seg.get("country", "fr").column("x").counts.tolist(), seg.total("country").rows
([2, 0, 0, 0], 5)
>>> other = summarize_segments(profile, {"x": [6.0, 7.0]}, {"country": ["it", "it"]}, k=2, seed=1)
>>> merged = seg.merge(other)
>>> merged.labels("country"), merged.rows("country", "it"), merged.missed_rows("country", "it")
(['fr', 'it'], 2, 1)
>>> back = Segments.from_dict(merged.to_dict(), decode_summary)
>>> back.to_dict() == merged.to_dict()
True

References
----------
Cormode, G., Muthukrishnan, S. (2005). An improved data stream summary: the count-min
sketch and its applications. Journal of Algorithms 55(1) (see :mod:`raywatch.stats.countmin`).
Metwally, A., Agrawal, D., El Abbadi, A. (2005). Efficient computation of frequent and
top-k elements in data streams. ICDT 2005 (keep the heaviest, fold the rest).
"""

from __future__ import annotations

import base64
import logging
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from raywatch.stats.codec import FormatError
from raywatch.stats.countmin import CountMin
from raywatch.stats.labels import MAX_LABEL_LENGTH, MISSING, OTHER, RESERVED, segment_label
from raywatch.stats.summary import WindowSummary

__all__ = [
    "Segments", "segment_label", "encode_state", "decode_summary",
    "OTHER", "MISSING", "DEFAULT_K", "MAX_LABEL_LENGTH",
]

log = logging.getLogger("raywatch.stats.segments")

DEFAULT_K = 20
FORMAT = "raywatch.segments"
FORMAT_VERSION = 1
MAX_K = 1000
MAX_COLUMNS = 64


class _Column:
    __slots__ = ("kept", "rows", "other", "other_rows", "missed")

    def __init__(self) -> None:
        self.kept: Dict[str, Any] = {}
        self.rows: Dict[str, int] = {}
        self.other: Any = None
        self.other_rows = 0
        self.missed = CountMin()


def _merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    # never change an accumulator in place: a LatencySketch's merge does, so copy it first
    return (a.copy() if hasattr(a, "copy") else a).merge(b)


def _fold(col: _Column, labels: Sequence[str], accs: Sequence[Any], rows: Sequence[int]) -> None:
    for acc in accs:
        col.other = _merge(col.other, acc)
    col.other_rows += int(sum(rows))
    col.missed.add(labels, rows)


class _Codes(dict):
    """Value -> its code, the next code for a value not seen before: one dict lookup a row."""

    __slots__ = ()

    def __missing__(self, value: Any) -> int:
        code = self[value] = len(self)
        return code


def _factorize(values: Any) -> Tuple[np.ndarray, List[Any]]:
    """Codes of ``values`` (0, 1, … in order of first appearance) and the distinct values."""
    vals = values.tolist() if isinstance(values, np.ndarray) else list(values)
    codes = _Codes()
    try:
        out = np.fromiter(map(codes.__getitem__, vals), dtype=np.int64, count=len(vals))
    except TypeError:  # unhashable values: segment them by their text
        vals, codes = [str(v) for v in vals], _Codes()
        out = np.fromiter(map(codes.__getitem__, vals), dtype=np.int64, count=len(vals))
    return out, list(codes)


def _labels(values: List[Any], max_length: int, key: Any) -> List[str]:
    if key is not None:
        return [segment_label(v, max_length, key) for v in values]
    # most values are short ASCII strings, their own label: skip the call for them
    return [v if type(v) is str and len(v) <= max_length and v.isascii() and v not in RESERVED
            else segment_label(v, max_length) for v in values]


class Segments:
    """Per-segment accumulators for some columns, each column bounded to ``k`` values plus
    ``__other__`` (see the module docstring for the rules)."""

    __slots__ = ("k", "_columns", "whole")

    def __init__(self, k: int = DEFAULT_K):
        if not 1 <= int(k) <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k!r}")
        self.k = int(k)
        self._columns: Dict[str, _Column] = {}
        # the segment-less accumulator of every row, when the builder made it (summarize_segments
        # does); merged with the other side's when both have one, else dropped
        self.whole: Any = None

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        values: Mapping[str, Sequence[Any]],
        summarize: Optional[Callable[[np.ndarray], Any]] = None,
        *,
        summarize_all: Optional[Callable[[np.ndarray, np.ndarray], List[Any]]] = None,
        k: int = DEFAULT_K,
        prefer: Optional[Mapping[str, Sequence[Any]]] = None,
        keys: Optional[Mapping[str, Union[bytes, str]]] = None,
        max_label_length: int = MAX_LABEL_LENGTH,
    ) -> "Segments":
        """Segment one batch: ``values`` maps each segment column to its value per row;
        ``summarize(rows)`` makes the accumulator of the rows at those (ascending) indices;
        or ``summarize_all(order, bounds)`` all of a column's at once (group ``g`` is
        ``order[bounds[g]:bounds[g + 1]]``: the kept values, then ``__other__`` if any).
        ``prefer`` (column → values) are kept first when present; ``keys`` (column → secret)
        hash that column's labels (:func:`segment_label`)."""
        if (summarize is None) == (summarize_all is None):
            raise TypeError("give one of summarize or summarize_all")
        if summarize_all is None:
            summarize_all = lambda order, bounds: [summarize(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]  # noqa: E731
        out = cls(k)
        lengths = {len(v) for v in values.values()}
        if len(lengths) > 1:
            raise ValueError(f"segment columns must have one value per row, got lengths {sorted(lengths)}")
        for name, vals in values.items():
            key = (keys or {}).get(name)
            codes, uniques = _factorize(vals)
            index: Dict[str, int] = {}
            remap = np.fromiter(
                (index.setdefault(lab, len(index)) for lab in _labels(uniques, max_label_length, key)),
                dtype=np.int64, count=len(uniques),
            )
            names = list(index)
            codes = remap[codes]
            counts = np.bincount(codes, minlength=len(names))
            wanted = [segment_label(v, max_label_length, key) for v in (prefer or {}).get(name, ())]
            chosen = list(dict.fromkeys(index[w] for w in wanted if w in index))[:out.k]
            if len(chosen) < out.k:
                taken = set(chosen)
                for i in np.argsort(-counts, kind="stable")[: out.k + len(chosen)].tolist():
                    if i not in taken and len(chosen) < out.k:
                        chosen.append(i)
            slot = np.full(len(names), len(chosen), dtype=np.int64)
            slot[chosen] = np.arange(len(chosen))
            row_slot = slot[codes].astype(np.int16)  # at most k + 1 slots: numpy sorts 16-bit keys by radix
            order = np.argsort(row_slot, kind="stable")
            bounds = np.concatenate(([0], np.cumsum(np.bincount(row_slot, minlength=len(chosen) + 1))))
            col = out._columns[name] = _Column()
            has_other = bounds[-1] > bounds[-2]
            accs = summarize_all(order, bounds if has_other else bounds[:-1]) if len(codes) else []
            for j, i in enumerate(chosen):
                col.kept[names[i]], col.rows[names[i]] = accs[j], int(counts[i])
            if has_other:
                rest = np.flatnonzero(slot == len(chosen))
                _fold(col, [names[i] for i in rest.tolist()], [accs[-1]], counts[rest])
        return out

    @classmethod
    def of(cls, column: str, label: str, accumulator: Any, rows: int = 0, k: int = MAX_K) -> "Segments":
        """A container holding one accumulator, to :meth:`merge` into a window's container:
        for example the outcome of feedback joined in the actor, under the bucket its request
        went to (:meth:`bucket`), with ``rows=0`` since its row was counted at prediction time.
        Its ``k`` (default the largest) leaves the window's ``k`` as it is."""
        out = cls(k)
        col = out._columns[column] = _Column()
        if label == OTHER:
            col.other, col.other_rows = accumulator, int(rows)
        else:
            col.kept[label], col.rows[label] = accumulator, int(rows)
        return out

    # ------------------------------------------------------------------- merging
    def merge(self, other: "Segments") -> "Segments":
        """A new container holding both (``k`` is the smaller of the two)."""
        if not isinstance(other, Segments):
            raise TypeError(f"cannot merge Segments with {type(other).__name__}")
        out = Segments(min(self.k, other.k))
        if self.whole is not None and other.whole is not None:
            out.whole = _merge(self.whole, other.whole)
        for name in dict.fromkeys([*self._columns, *other._columns]):
            a, b = self._columns.get(name), other._columns.get(name)
            col = out._columns[name] = _Column()
            for src in (a, b):
                if src is None:
                    continue
                for label, acc in src.kept.items():
                    col.kept[label] = _merge(col.kept.get(label), acc)
                    col.rows[label] = col.rows.get(label, 0) + src.rows[label]
                col.other = _merge(col.other, src.other)
                col.other_rows += src.other_rows
                col.missed = col.missed.merge(src.missed)
            if len(col.kept) > out.k:
                losers = sorted(col.kept, key=lambda lab: (-col.rows[lab], lab))[out.k :]
                _fold(col, losers, [col.kept.pop(lab) for lab in losers], [col.rows.pop(lab) for lab in losers])
        return out

    # ------------------------------------------------------------------- reading
    @property
    def columns(self) -> Tuple[str, ...]:
        return tuple(self._columns)

    def _col(self, column: str) -> _Column:
        try:
            return self._columns[column]
        except KeyError:
            raise KeyError(f"no segment column {column!r} (columns: {', '.join(self._columns)})") from None

    def labels(self, column: str) -> List[str]:
        """The kept labels, most traffic first (ties: the smaller label)."""
        col = self._col(column)
        return sorted(col.kept, key=lambda lab: (-col.rows[lab], lab))

    def get(self, column: str, label: str) -> Any:
        """The accumulator of a kept label, or of ``__other__`` (None when it is empty)."""
        col = self._col(column)
        if label == OTHER:
            return col.other
        try:
            return col.kept[label]
        except KeyError:
            raise KeyError(f"{column}={label!r} is not among the kept segments (see bucket())") from None

    def bucket(self, column: str, value: Any) -> str:
        """Where a value's rows go now: its label when kept, otherwise ``__other__``."""
        label = value if isinstance(value, str) else segment_label(value)
        return label if label in self._col(column).kept else OTHER

    def rows(self, column: str, label: Optional[str] = None) -> int:
        """Rows of one bucket, or of the whole column (every row) when ``label`` is None."""
        col = self._col(column)
        if label is None:
            return sum(col.rows.values()) + col.other_rows
        return col.other_rows if label == OTHER else col.rows.get(label, 0)

    def missed_rows(self, column: str, label: str) -> int:
        """An upper bound on the rows of ``label`` that sit in ``__other__`` (0: complete)."""
        col = self._col(column)
        return min(col.missed.estimate(label), col.other_rows) if col.other_rows else 0

    def items(self, column: str) -> Iterator[Tuple[str, Any, int]]:
        """``(label, accumulator, rows)`` for the kept labels, then ``__other__`` if not empty."""
        col = self._col(column)
        for label in self.labels(column):
            yield label, col.kept[label], col.rows[label]
        if col.other_rows or col.other is not None:
            yield OTHER, col.other, col.other_rows

    def total(self, column: str) -> Any:
        """Every bucket of ``column`` merged: the segment-less accumulator (None if empty);
        :attr:`whole` holds it already when the builder made it."""
        acc = None
        for _, a, _ in self.items(column):
            acc = _merge(acc, a)
        return acc

    # ------------------------------------------------------------- serialization
    def to_dict(self, encode: Callable[[Any], Any] = None) -> Dict[str, Any]:
        """JSON-able state; ``encode`` turns an accumulator into JSON-able data
        (default :func:`encode_state`)."""
        enc = encode or encode_state
        cols = []
        for name, col in self._columns.items():
            cols.append({
                "name": name,
                "segments": [[label, col.rows[label], enc(col.kept[label])] for label in self.labels(name)],
                "other": {
                    "rows": col.other_rows,
                    "state": None if col.other is None else enc(col.other),
                    "missed": col.missed.to_cells(),
                },
            })
        return {"format": FORMAT, "version": FORMAT_VERSION, "k": self.k, "columns": cols,
                "whole": None if self.whole is None else enc(self.whole)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], decode: Callable[[Any], Any]) -> "Segments":
        """Inverse of :meth:`to_dict`; ``decode`` rebuilds one accumulator. Raises
        :class:`~raywatch.stats.codec.FormatError` naming what is wrong or out of bounds."""

        def check(ok: bool, what: str) -> None:
            if not ok:
                raise FormatError(f"damaged segments state: {what}")

        def count(v: Any, what: str) -> int:
            check(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{what} must be a count, got {v!r}")
            return int(v)

        check(isinstance(data, Mapping) and data.get("format") == FORMAT, f"not a {FORMAT} document")
        check(data.get("version") == FORMAT_VERSION, f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
        k = count(data.get("k"), "k")
        check(1 <= k <= MAX_K, f"k={k} out of bounds")
        columns = data.get("columns")
        check(isinstance(columns, list) and len(columns) <= MAX_COLUMNS, f"at most {MAX_COLUMNS} columns")
        out = cls(k)
        try:
            out.whole = None if data.get("whole") is None else decode(data["whole"])
            for c in columns:
                name, segs, other = c["name"], c["segments"], c["other"]
                check(isinstance(name, str) and name not in out._columns, f"bad or repeated column name {name!r}")
                check(isinstance(segs, list) and len(segs) <= k, f"column {name!r} holds more than k={k} segments")
                col = out._columns[name] = _Column()
                for label, rows, state in segs:
                    check(isinstance(label, str) and len(label) <= 4 * MAX_LABEL_LENGTH and label not in col.kept
                          and label != OTHER, f"bad or repeated label {str(label)[:80]!r} in {name!r}")
                    col.rows[label] = count(rows, f"{name}={label} rows")
                    col.kept[label] = decode(state)
                col.other_rows = count(other["rows"], f"{name} other rows")
                col.other = None if other["state"] is None else decode(other["state"])
                check(isinstance(other["missed"], list), f"column {name!r}: count-min cells must be a list")
                col.missed = CountMin.from_cells(other["missed"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"damaged segments state: {type(exc).__name__}: {exc}") from None
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}: {len(c.kept)} kept + {c.other_rows} other rows" for n, c in self._columns.items())
        return f"Segments(k={self.k}, {inner})"


def encode_state(acc: Any) -> Any:
    """Default accumulator encoding: a WindowSummary as base64 of its ``to_bytes``, anything
    else by its ``to_dict()``."""
    if isinstance(acc, WindowSummary):
        return base64.b64encode(acc.to_bytes()).decode("ascii")
    return acc.to_dict()


def decode_summary(data: Any) -> WindowSummary:
    """Inverse of :func:`encode_state` for window summaries."""
    if not isinstance(data, str):
        raise FormatError(f"a window summary must be base64 text, got {type(data).__name__}")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise FormatError("a window summary's base64 is damaged") from None
    return WindowSummary.from_bytes(raw)
