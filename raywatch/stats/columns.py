"""Turning user data into typed columns: input shapes, kind inference and value encoding.

Accepted inputs (:func:`to_columns`): a mapping of column name → sequence or 1-D numpy
array, a list of row dicts, and — when those libraries happen to be installed — a pandas
DataFrame or a pyarrow Table (neither is a dependency).

Column kinds:

* ``"numerical"`` — numbers. ``None`` and NaN are *missing*; ±inf are *non-finite*;
  booleans count as 0/1; strings and other objects are *wrong type* (a string that
  looks like a number, such as ``"1.5"``, is still a string).
* ``"categorical"`` — hashable labels (strings, integers). ``None``/NaN are *missing*; a
  value whose type family (string, number, boolean) never occurs in the reference is
  *wrong type*; a value of the right family that the reference never had is *unseen*.
* ``"boolean"`` — ``True``/``False`` (also 0/1); anything else is *wrong type*.

Kind inference (:func:`infer_kind`): numpy bool → boolean; integer and float dtypes →
numerical; string dtypes → categorical; object columns by the values they hold (all
booleans → boolean, all numbers → numerical, otherwise categorical). Dates, complex
numbers and nested values are refused with an error that names the column.

>>> infer_kind("age", [31, 42, None])
'numerical'
>>> infer_kind("country", ["fr", "de"])
'categorical'
>>> encode_numerical(np.array([1.0, None, "x", True], dtype=object))
(array([ 1., nan,  1.]), 1)
"""

from __future__ import annotations

import logging
import math
import numbers
from itertools import repeat
from typing import Any, Dict, Hashable, List, Mapping, Optional, Set, Tuple

import numpy as np

__all__ = [
    "KINDS",
    "to_columns",
    "as_array",
    "infer_kind",
    "encode_numerical",
    "encode_categorical",
    "count_strings",
    "normalize_label",
    "type_family",
]

log = logging.getLogger("raywatch.stats.columns")

KINDS = ("numerical", "categorical", "boolean")

MISSING = -2
WRONG = -3


def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas" and hasattr(obj, "columns")


def _is_arrow(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "pyarrow" and hasattr(obj, "column_names")


def as_array(name: str, values: Any) -> np.ndarray:
    """One column as a 1-D numpy array, without numpy's silent string coercion of lists.

    ``np.asarray([1, "a"])`` would give ``['1', 'a']``; lists that are not purely numeric
    become object arrays instead, so every value keeps its own type.
    """
    if isinstance(values, np.ndarray):
        arr = values
    else:
        if hasattr(values, "to_numpy") and not isinstance(values, (list, tuple)):
            try:
                arr = values.to_numpy(zero_copy_only=False)  # pyarrow arrays
            except TypeError:
                arr = values.to_numpy()  # pandas series
        else:
            if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
                raise TypeError(
                    f"column {name!r}: expected a sequence or 1-D array of values, got {type(values).__name__}"
                )
            seq = values if isinstance(values, (list, tuple)) else list(values)
            try:
                arr = np.asarray(seq)
            except (ValueError, TypeError):
                arr = None
            if arr is None or arr.dtype.kind in "USO" or arr.ndim != 1:
                arr = np.empty(len(seq), dtype=object)
                arr[:] = list(seq)
    if arr.ndim != 1:
        raise ValueError(f"column {name!r}: expected a 1-D sequence of values, got an array of shape {arr.shape}")
    return arr


def to_columns(data: Any) -> Tuple[Dict[str, np.ndarray], int]:
    """``(columns, rows)`` from any accepted input shape.

    For a list of row dicts, a key absent from a row reads as missing for that row.
    All columns of a mapping must have the same length.
    """
    if _is_pandas(data):
        cols = {str(c): as_array(str(c), data[c].to_numpy()) for c in data.columns}
    elif _is_arrow(data):
        cols = {str(c): as_array(str(c), data.column(c)) for c in data.column_names}
    elif isinstance(data, Mapping):
        cols = {str(k): as_array(str(k), v) for k, v in data.items()}
    elif isinstance(data, (list, tuple)):
        if not data:
            return {}, 0
        if not all(isinstance(r, Mapping) for r in data):
            bad = next(type(r).__name__ for r in data if not isinstance(r, Mapping))
            raise TypeError(f"a list of rows must hold dicts (column name -> value), found a {bad}")
        names: Dict[str, None] = {}
        for r in data:
            for k in r:
                names.setdefault(str(k), None)
        cols = {}
        for name in names:
            arr = np.empty(len(data), dtype=object)
            arr[:] = [r.get(name) for r in data]
            cols[name] = arr
        return cols, len(data)
    else:
        raise TypeError(
            "expected columns as a mapping of name -> values, a list of row dicts, a pandas DataFrame "
            f"or a pyarrow Table, got {type(data).__name__}"
        )
    lengths = {name: int(a.shape[0]) for name, a in cols.items()}
    rows = max(lengths.values(), default=0)
    short = {n: l for n, l in lengths.items() if l != rows}
    if short:
        name, length = next(iter(short.items()))
        raise ValueError(f"column {name!r} has {length} values, but other columns have {rows}")
    return cols, rows


# ------------------------------------------------------------------------ kinds


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, np.floating) and np.isnan(v))


def type_family(v: Any) -> str:
    """``"bool"``, ``"number"``, ``"str"`` or ``"other"``."""
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, numbers.Real) and not isinstance(v, np.timedelta64):
        return "number"
    if isinstance(v, (str, bytes, np.str_, np.bytes_)):
        return "str"
    return "other"


def _family_of_type(t: type) -> str:
    if t is type(None):
        return "missing"
    if issubclass(t, (bool, np.bool_)):
        return "bool"
    if issubclass(t, numbers.Real) and not issubclass(t, np.timedelta64):
        return "number"
    if issubclass(t, (str, bytes, np.str_, np.bytes_)):
        return "str"
    return "other"


def normalize_label(v: Any) -> Hashable:
    """A JSON-able, canonical category label: numpy scalars → Python, 3.0 → 3, bytes → str."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def infer_kind(name: str, values: Any) -> str:
    """The kind of a reference column (see the module docstring)."""
    arr = values if isinstance(values, np.ndarray) else as_array(name, values)
    k = arr.dtype.kind
    if k == "b":
        return "boolean"
    if k in "iuf":
        return "numerical"
    if k in "US":
        return "categorical"
    if k != "O":
        raise TypeError(
            f"column {name!r}: dtype {arr.dtype} is not supported; convert it to numbers "
            "(e.g. seconds since the epoch) or strings first"
        )
    families: Set[str] = set()
    for v in arr:
        if _is_missing(v):
            continue
        fam = type_family(v)
        if fam == "other":
            raise TypeError(
                f"column {name!r}: values of type {type(v).__name__} are not supported; "
                "use numbers, strings or booleans"
            )
        families.add(fam)
    if families == {"bool"}:
        return "boolean"
    if families == {"number"}:
        return "numerical"
    if not families:
        raise ValueError(f"column {name!r} has no values (all missing); give its kind or drop it")
    return "categorical"


# --------------------------------------------------------------------- encoding

_NUMERIC_TYPES = (float, int, np.float64, np.float32, np.int64, np.int32)


def encode_numerical(arr: np.ndarray) -> Tuple[np.ndarray, int]:
    """``(float64 values with NaN for missing, wrong_type_count)``; wrong-type values are dropped."""
    k = arr.dtype.kind
    if k == "f":
        return arr.astype(np.float64, copy=False), 0
    if k in "iub":
        return arr.astype(np.float64), 0
    if k != "O":
        return np.empty(0, dtype=np.float64), int(arr.shape[0])
    types = set(map(type, arr))
    if types <= set(_NUMERIC_TYPES):
        return arr.astype(np.float64), 0
    out: List[float] = []
    wrong = 0
    nan = math.nan
    for v in arr:
        if v is None:
            out.append(nan)
        elif isinstance(v, (numbers.Real, np.bool_)) and not isinstance(v, np.timedelta64):
            try:
                out.append(float(v))
            except (OverflowError, TypeError, ValueError):
                wrong += 1
        else:
            wrong += 1
    return np.asarray(out, dtype=np.float64), wrong


def _classify(v: Any, lookup: Mapping[Hashable, int], families: Set[str], unseen: int) -> int:
    if _is_missing(v):
        return MISSING
    try:
        code = lookup.get(v)
    except TypeError:  # unhashable
        return WRONG
    if code is not None and type_family(v) in families:
        return code
    if type_family(v) not in families:
        return WRONG
    code = lookup.get(normalize_label(v))
    return unseen if code is None else code


def encode_categorical(
    arr: np.ndarray, lookup: Mapping[Hashable, int], families: Set[str], unseen: int
) -> np.ndarray:
    """Codes per value: the lookup's code, ``unseen`` for a new label of a known type family,
    ``MISSING`` (-2) or ``WRONG`` (-3). Vectorized for numpy string, integer, float and
    bool arrays; object arrays go through one dict lookup per value."""
    k = arr.dtype.kind
    n = int(arr.shape[0])
    if k == "S":
        arr = np.char.decode(arr, "utf-8", "replace")
        k = "U"
    if k == "U":
        if "str" not in families:
            return np.full(n, WRONG, dtype=np.int64)
        str_keys = [(key, code) for key, code in lookup.items() if isinstance(key, str)]
        if len(str_keys) <= 64:
            codes = np.full(n, unseen, dtype=np.int64)
            for key, code in str_keys:
                codes[arr == key] = code
            return codes
    if k in "Uiubf":
        if k == "f":
            nan = np.isnan(arr)
            if nan.any():
                codes = np.full(n, MISSING, dtype=np.int64)
                codes[~nan] = encode_categorical(arr[~nan], lookup, families, unseen)
                return codes
        uniq, inverse = np.unique(arr, return_inverse=True)
        mapped = np.fromiter(
            (_classify(u, lookup, families, unseen) for u in uniq.tolist()), dtype=np.int64, count=uniq.size
        )
        return mapped[inverse.reshape(-1)]
    if k != "O":
        return np.full(n, WRONG, dtype=np.int64)
    try:
        codes = np.fromiter(map(lookup.get, arr, repeat(-1)), dtype=np.int64, count=n)
    except TypeError:  # an unhashable value somewhere: classify one by one
        return np.fromiter((_classify(v, lookup, families, unseen) for v in arr), dtype=np.int64, count=n)
    # a hit is only valid for a type family the reference had (True == 1 in a dict)
    present = {_family_of_type(t) for t in set(map(type, arr))} - {"missing"}
    if not present <= families:
        check = codes >= 0
        if check.any():
            bad_type = np.fromiter(
                (type_family(v) not in families for v in arr[check]), dtype=bool, count=int(check.sum())
            )
            if bad_type.any():
                codes[np.flatnonzero(check)[bad_type]] = -1
    todo = np.flatnonzero(codes == -1)
    if todo.size:
        codes[todo] = np.fromiter(
            (_classify(v, lookup, families, unseen) for v in arr[todo]), dtype=np.int64, count=todo.size
        )
    return codes


def count_strings(
    arr: np.ndarray, lookup: Mapping[Hashable, int], families: Set[str], unseen: int
) -> Optional[np.ndarray]:
    """The tally of :func:`encode_categorical`'s codes (count of code ``c`` at ``c + 3``)
    for a numpy string array against at most 64 known labels, without building codes:
    one vectorized comparison per label. ``None`` when this fast path does not apply."""
    if arr.dtype.kind != "U" or "str" not in families:
        return None
    str_keys = [(key, code) for key, code in lookup.items() if isinstance(key, str)]
    if len(str_keys) > 64:
        return None
    tally = np.zeros(unseen + 4, dtype=np.int64)
    for key, code in str_keys:
        tally[code + 3] += int(np.count_nonzero(arr == key))
    tally[unseen + 3] = int(arr.shape[0]) - int(tally.sum())
    return tally
