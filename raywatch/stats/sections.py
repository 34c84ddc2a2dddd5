"""Optional, named parts of profiles and window summaries: extensions and sections.

A profile may carry *extensions* beside its per-column bins: a calibration map for
label-free performance estimation, the reference's principal components, a random
projection for an embedding column, outlier fences. Each extension turns a batch of rows
into a *section* of the window summary: a small accumulator that merges exactly (sums,
Chan's co-moments), whatever the number of rows. A summary carries its sections by name
(``summary.sections["correlation"]``); a summary without sections reads, merges and
serializes exactly as before, so a replica with a plain profile and an actor with an
extended one (or the other way round) still understand each other.

Both halves are plain data. :meth:`Section.state` and :meth:`Extension.state` give a JSON-able
``meta`` dict and 1-D numeric arrays, which the checksummed codec
(:mod:`raywatch.stats.codec`) packs beside the summary's or the profile's own arrays and
:meth:`Section.to_dict` writes as JSON for state-as-data; a reader rebuilds a part from its
registered *kind* and checks every size it reads. Sections of a kind this raywatch does not
know (written by a newer one) are dropped on reading and logged, never guessed at.

Writing a new kind: subclass :class:`Section` (``kind``, ``version``, ``merge``, ``state``,
``from_state``) and :class:`Extension` (``summarize``, ``empty``, ``state``,
``from_state``), decorate both with :func:`register`, and list the module in
:mod:`raywatch.stats.kinds` (imported by the summary and profile modules, so every reader
knows the kind). Segments and attributions can
reuse the mechanism as they are.

>>> import numpy as np
>>> @register
... class Total(Section):
...     kind = "doc.total"
...     def __init__(self, total=0.0):
...         self.total = float(total)
...     def merge(self, other):
...         return Total(self.total + other.total)
...     def state(self):
...         return {}, {"total": np.array([self.total])}
...     @classmethod
...     def from_state(cls, meta, arrays):
...         return cls(float(need(arrays, "total", 1)[0]))
>>> table, arrays = encode({"t": Total(2.0).merge(Total(3.0))})
>>> decode(table, arrays)["t"].total
5.0
>>> Section.from_dict(Total(1.5).to_dict()) == Total(1.5)
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

import numpy as np

from raywatch.stats.columns import encode_numerical

__all__ = [
    "Section", "Extension", "Batch", "register", "encode", "decode", "merge_sections", "need", "checked_kind",
    "SECTIONS", "EXTENSIONS",
]

log = logging.getLogger("raywatch.stats.sections")

State = Tuple[Dict[str, Any], Dict[str, np.ndarray]]
SECTIONS: Dict[str, Type["Section"]] = {}
EXTENSIONS: Dict[str, Type["Extension"]] = {}
MAX_PARTS = 64  # sections a summary (extensions a profile) may carry


def register(cls: type) -> type:
    """Class decorator: make a :class:`Section` or :class:`Extension` kind readable."""
    registry: Dict[str, Any] = SECTIONS if issubclass(cls, Section) else EXTENSIONS
    if not cls.kind:
        raise ValueError(f"{cls.__name__} needs a kind")
    registry[cls.kind] = cls
    return cls


def need(arrays: Mapping[str, np.ndarray], name: str, size: Optional[int] = None) -> np.ndarray:
    """``arrays[name]``, checked to hold ``size`` values; ValueError saying what is wrong."""
    if name not in arrays:
        raise ValueError(f"array {name!r} is missing")
    a = arrays[name]
    if size is not None and a.size != int(size):
        raise ValueError(f"array {name!r} holds {a.size} values, expected {int(size)}")
    return a


def _fingerprint(state: State) -> str:
    meta, arrays = state
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name], dtype="<f8").tobytes())
    return h.hexdigest()[:16]


class _Part:
    kind: ClassVar[str] = ""
    version: ClassVar[int] = 1

    def state(self) -> State:
        """``(meta, arrays)``: a JSON-able dict and named numeric arrays (any shape)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
        """Rebuild from :meth:`state`; ValueError when a size or value does not fit."""
        raise NotImplementedError

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able data (arrays as lists of numbers) that :meth:`from_dict` reads back."""
        meta, arrays = self.state()
        return {
            "kind": self.kind,
            "version": self.version,
            "meta": meta,
            "arrays": {k: [np.asarray(v).dtype.str, list(np.shape(v)), np.asarray(v).reshape(-1).tolist()]
                       for k, v in arrays.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        registry: Dict[str, Any] = SECTIONS if issubclass(cls, Section) else EXTENSIONS
        kind = data.get("kind") if isinstance(data, Mapping) else None
        target = registry.get(kind) if kind else None
        if target is None:
            raise ValueError(f"unknown {'section' if registry is SECTIONS else 'extension'} kind {kind!r}")
        if int(data.get("version", 0)) > target.version:
            raise ValueError(f"{kind} version {data.get('version')} is newer than this raywatch reads ({target.version})")
        arrays = {}
        for k, (dtype, shape, values) in dict(data.get("arrays", {})).items():
            if dtype not in ("<f8", "<i8", "<f4", "<u4"):
                raise ValueError(f"array {k!r} has unsupported dtype {dtype!r}")
            a = np.asarray(values, dtype=dtype)
            shape = tuple(int(d) for d in shape)
            if a.size != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"array {k!r} does not have the shape it claims")
            arrays[str(k)] = a.reshape(shape)
        return target.from_state(dict(data.get("meta", {})), arrays)

    def fingerprint(self) -> str:
        """A short hash of the state: equal parts have equal fingerprints."""
        return _fingerprint(self.state())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        (ma, aa), (mb, ab) = self.state(), other.state()  # type: ignore[attr-defined]
        return ma == mb and aa.keys() == ab.keys() and all(np.array_equal(aa[k], ab[k], equal_nan=True) for k in aa)

    __hash__ = None  # type: ignore[assignment]


class Section(_Part):
    """A mergeable accumulator carried by a window summary under a name.

    ``merge`` returns a new section holding both (exact, associative, commutative);
    ``state``/``from_state`` are its data form.
    """

    def merge(self, other: "Section") -> "Section":
        raise NotImplementedError


class Extension(_Part):
    """A fitted part of a profile that makes one section per batch (in the replica).

    ``name`` is the section's name in the summaries; ``summarize(batch)`` must be cheap
    (vectorized, a few passes over the rows) because it runs at every replica flush.
    """

    name: str = ""

    def summarize(self, batch: "Batch") -> Section:
        raise NotImplementedError

    def empty(self) -> Section:
        raise NotImplementedError

    def reads(self) -> Tuple[str, ...]:
        """The input columns this extension reads."""
        return ()


def _aligned(arr: np.ndarray) -> np.ndarray:
    """float64 values, one per row: NaN for missing values and values of a wrong type."""
    x, wrong = encode_numerical(arr)
    if not wrong:
        return x

    def one(v: Any) -> float:
        try:
            f = float(v)
        except (TypeError, ValueError, OverflowError):
            return math.nan
        return math.nan if isinstance(v, (str, bytes)) else f

    return np.fromiter((one(v) for v in arr), dtype=np.float64, count=arr.shape[0])


class Batch:
    """What an extension sees of a batch: its columns, by name, and their numeric forms.

    ``numeric(name)`` is the column as float64 with NaN for missing and wrong-type values
    (cached, and shared with the profile's own pass where it already made it); ``matrix``
    stacks several into ``(rows, columns)``, NaN for an absent column (cached too: several
    extensions reading the same columns share one; treat it as read-only).
    """

    __slots__ = ("columns", "rows", "_numeric", "_matrices")

    def __init__(self, columns: Mapping[str, Any], rows: int, numeric: Optional[Dict[str, np.ndarray]] = None):
        self.columns = columns
        self.rows = int(rows)
        self._numeric: Dict[str, np.ndarray] = numeric if numeric is not None else {}
        self._matrices: Dict[Tuple[str, ...], np.ndarray] = {}

    def numeric(self, name: str) -> Optional[np.ndarray]:
        x = self._numeric.get(name)
        if x is None:
            arr = self.columns.get(name)
            if arr is None:
                return None
            x = self._numeric[name] = _aligned(np.asarray(arr) if not isinstance(arr, np.ndarray) else arr)
        return x

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        key = tuple(names)
        out = self._matrices.get(key)
        if out is None:
            out = np.empty((self.rows, len(names)), dtype=np.float64)
            for j, name in enumerate(names):
                x = self.numeric(name)
                out[:, j] = np.nan if x is None or x.size != self.rows else x
            out.flags.writeable = False
            self._matrices[key] = out
        return out


def encode(parts: Mapping[str, _Part], prefix: str = "s") -> Tuple[List[list], Dict[str, np.ndarray]]:
    """``(table, arrays)`` for the codec: ``table`` lists ``[name, kind, version, meta,
    shapes]``; the arrays are flattened under ``"<prefix><i>.<array>"``."""
    table: List[list] = []
    out: Dict[str, np.ndarray] = {}
    for i, (name, part) in enumerate(parts.items()):
        meta, arrays = part.state()
        shapes = {}
        for k, a in arrays.items():
            a = np.asarray(a)
            shapes[k] = list(a.shape)
            out[f"{prefix}{i}.{k}"] = a.reshape(-1)
        table.append([str(name), part.kind, part.version, meta, shapes])
    return table, out


def decode(
    table: Sequence[Any], arrays: Mapping[str, np.ndarray], prefix: str = "s", what: str = "section"
) -> Dict[str, Any]:
    """Inverse of :func:`encode`; parts of unknown kinds are left out (and logged). Raises
    ValueError when an entry or an array does not fit."""
    if not isinstance(table, (list, tuple)) or len(table) > MAX_PARTS:
        raise ValueError(f"bad {what} table")
    registry: Dict[str, Any] = EXTENSIONS if what == "extension" else SECTIONS
    out: Dict[str, Any] = {}
    for i, entry in enumerate(table):
        name, kind, version, meta, shapes = entry
        cls = registry.get(kind)
        if cls is None or int(version) > cls.version:
            log.debug("left out %s %r of kind %r version %r: not known to this raywatch", what, name, kind, version)
            continue
        parts: Dict[str, np.ndarray] = {}
        for k, shape in dict(shapes).items():
            a = arrays.get(f"{prefix}{i}.{k}")
            shape = tuple(int(s) for s in shape)
            if a is None or a.size != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"{what} {name!r}: array {k!r} is missing or has the wrong size")
            parts[k] = a.reshape(shape)
        try:
            out[str(name)] = cls.from_state(dict(meta), parts)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ValueError(f"{what} {name!r} ({kind}): {exc}") from None
    return out


def merge_sections(a: Mapping[str, Section], b: Mapping[str, Section]) -> Dict[str, Section]:
    """The union of two summaries' sections, merging those both carry."""
    out = dict(a)
    for name, s in b.items():
        out[name] = out[name].merge(s) if name in out else s
    return out


def checked_kind(part: Union[Section, Extension], other: Any) -> None:
    """TypeError unless ``other`` is of the same class as ``part`` (for ``merge``)."""
    if type(other) is not type(part):
        raise TypeError(f"cannot merge a {part.kind} section with {type(other).__name__}")
