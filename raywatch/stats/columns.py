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
  Numbers and text compare by their normalised text: ``"75001"`` is the label 75001 (a
  profile built from a CSV of zip codes) and 75001 is the label ``"75001"``; a number
  written as text that the reference never had is *unseen* for number labels, and a
  number is *unseen* for labels that are mostly numbers written as text (else wrong type).
  Text is never a boolean.
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
import re
from itertools import repeat
from typing import Any, Dict, Hashable, List, Mapping, Optional, Set, Tuple

import numpy as np

from raywatch.stats.memo import IdentityCache

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
    "wrong_type_names",
    "TOO_LARGE",
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
        try:
            return arr.astype(np.float64), 0
        except (OverflowError, TypeError, ValueError):
            pass  # an int too large for a float: value by value, it alone is wrong type
    out: List[float] = []
    wrong = 0
    nan = math.nan
    for v in arr:
        if v is None:
            out.append(nan)
        elif _is_real(v):
            try:
                out.append(float(v))
            except Exception:  # noqa: BLE001 - any value that is no float costs only itself
                wrong += 1
        else:
            wrong += 1
    return np.asarray(out, dtype=np.float64), wrong


def _is_real(v: Any) -> bool:
    return isinstance(v, (numbers.Real, np.bool_)) and not isinstance(v, np.timedelta64)


def _classify(v: Any, lookup: Mapping[Hashable, int], families: Set[str], unseen: int) -> int:
    if _is_missing(v):
        return MISSING
    try:
        code = lookup.get(v)
    except Exception:  # noqa: BLE001 - unhashable (or a hash that raises): it alone is wrong
        return WRONG
    family = type_family(v)
    if code is not None and family in families:
        return code
    if family in families:
        code = lookup.get(normalize_label(v))
        if code is None and "str" in families and "number" in families:
            code = _by_text(v, family, lookup)  # labels of both families: "75001" is 75001
        return unseen if code is None else code
    if "bool" in families or family not in ("str", "number"):
        return WRONG
    # a number for labels written as text, or a number written as text for number labels:
    # compared by its normalised text
    code = _by_text(v, family, lookup)
    if code is not None:
        return code
    if family == "str":
        return unseen if _as_number(v) is not None else WRONG
    return unseen if _numeric_text_labels(lookup) else WRONG


_INT_TEXT = re.compile(r"[+-]?[0-9]{1,4000}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _as_number(v: Any) -> Any:
    """The number a label written as text stands for (``"75001"`` → 75001, ``"2.50"`` → 2.5),
    or None."""
    text = normalize_label(v)
    if not isinstance(text, str):
        return None
    if _INT_TEXT.fullmatch(text):
        return int(text)
    if _FLOAT_TEXT.fullmatch(text):
        number = float(text)
        return normalize_label(number) if math.isfinite(number) else None
    return None


def _as_text(v: Any) -> Any:
    """A number label's text (75001 and 75001.0 → ``"75001"``), or None."""
    v = normalize_label(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return str(v) if isinstance(v, int) else repr(v)


def _by_text(v: Any, family: str, lookup: Mapping[Hashable, int]) -> Optional[int]:
    """The code of the label that ``v`` spells in the other family, or None."""
    other = _as_number(v) if family == "str" else _as_text(v)
    return None if other is None else lookup.get(other)


_NUMERIC_TEXT = IdentityCache(256)  # a column's lookup → whether its text labels are numbers


def _numeric_text_labels(lookup: Mapping[Hashable, int]) -> bool:
    """Whether most text labels of a column are numbers written as text (zip codes, ids):
    then a number the reference never had is an unseen label, not a wrong type. Computed
    once per lookup (a profile's column)."""
    hit = _NUMERIC_TEXT.get((lookup,))
    if hit is not None:
        return hit
    texts = [k for k in lookup if isinstance(k, str)]
    numeric = 2 * sum(1 for k in texts if _as_number(k) is not None) > len(texts) > 0
    return _NUMERIC_TEXT.put((lookup,), numeric)


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
        if "str" not in families and ("number" not in families or "bool" in families):
            return np.full(n, WRONG, dtype=np.int64)
        str_keys = [(key, code) for key, code in lookup.items() if isinstance(key, str)]
        if "number" not in families and len(str_keys) <= 64:
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
    except Exception:  # noqa: BLE001 - an unhashable value somewhere: classify one by one
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
    if arr.dtype.kind != "U" or "str" not in families or "number" in families:
        return None
    str_keys = [(key, code) for key, code in lookup.items() if isinstance(key, str)]
    if len(str_keys) > 64:
        return None
    tally = np.zeros(unseen + 4, dtype=np.int64)
    for key, code in str_keys:
        tally[code + 3] += int(np.count_nonzero(arr == key))
    tally[unseen + 3] = int(arr.shape[0]) - int(tally.sum())
    return tally


# ------------------------------------------------------------ wrong-type diagnosis

TOO_LARGE = "int (too large for float)"
"""The name :func:`wrong_type_names` gives an integer no float can hold."""


def _type_name(v: Any) -> str:
    observed = getattr(v, "observed_type", None)  # a stand-in for a value that could not be kept
    if isinstance(observed, str):
        return observed
    if isinstance(v, np.generic):
        try:
            return type(v.item()).__name__
        except Exception:  # noqa: BLE001
            return type(v).__name__
    return type(v).__name__


def _numerical_wrong(v: Any) -> Optional[str]:
    """Why a value is wrong type for a numerical column (its type name), or None."""
    if v is None or _is_missing(v):
        return None
    if not _is_real(v):
        return _type_name(v)
    try:
        float(v)
    except OverflowError:
        return TOO_LARGE if isinstance(v, int) else _type_name(v)
    except Exception:  # noqa: BLE001
        return _type_name(v)
    return None


def wrong_type_names(arr: np.ndarray, spec: Any, limit: int = 3) -> List[str]:
    """The type names of the values of ``arr`` that a column counts as wrong type, in order
    of first appearance, at most ``limit`` of them (``["str"]`` for text sent to a numerical
    column). ``spec`` is the column's :class:`~raywatch.stats.profile.ColumnSpec`
    (``kind``, ``lookup``, ``families``, ``n_bins``). Off the request path, and only for a
    column whose summary counted wrong-type values: it walks the column once.

    >>> from raywatch.stats.profile import ColumnSpec
    >>> wrong_type_names(np.array([1.5, "n/a", None, b"x"], dtype=object), ColumnSpec("a", "numerical"))
    ['str', 'bytes']
    """
    names: List[str] = []
    if limit <= 0 or arr.size == 0:
        return names
    if spec.kind == "numerical":
        k = arr.dtype.kind
        if k in "iufb":
            return names
        if k != "O":
            return [_type_name(arr[0])]
        for v in arr:
            name = _numerical_wrong(v)
            if name is not None and name not in names:
                names.append(name)
                if len(names) >= limit:
                    break
        return names
    codes = encode_categorical(arr, spec.lookup, spec.families, spec.n_bins)
    bad = codes == WRONG
    if spec.kind == "boolean":
        bad |= codes == spec.n_bins  # a value of no category of a boolean column is wrong type
    for v in arr[bad]:
        name = _type_name(v)
        if name not in names:
            names.append(name)
            if len(names) >= limit:
                break
    return names
