"""Hostile request payloads for the request-path fuzz tests (imported as ``hostile_payloads``):
hypothesis strategies for deep nesting, huge values, NaN/inf, bytes, cycles, odd keys, numpy
object arrays; the model both fuzz tests serve (it answers with what it was sent, and raises
as user code may); and :func:`canon`, a comparable form of any answer (NaN equal to NaN, sets
in a fixed order, cycles and integers too long to print included)."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Any, List, Optional

import numpy as np
from hypothesis import strategies as st

__all__ = ["Model", "HUGE", "huge", "ODD_KEYS", "SCALARS", "VALUES", "payloads", "PAYLOADS", "canon"]


class Model:
    """Answers with the payload itself; a dict naming "boom" raises, as user code may."""

    def __call__(self, payload):
        if type(payload) is dict and "boom" in payload:
            raise KeyError("boom")
        return {"prediction": 1.0, "echo": payload}


def _deep(depth, kind):
    out = {} if kind == "dict" else []
    for _ in range(depth):
        out = {"a": out} if kind == "dict" else [out]
    return out


def _cyclic(kind):
    if kind == "dict":
        d = {"a": 1.0}
        d["self"] = d
        return d
    lst = [1.0]
    lst.append(lst)
    return lst


def huge(big: int = 10 << 20, depth: int = 30_000) -> List[Any]:
    """Values that are large, deep, recursive or odd; ``big`` bytes for the long string (and
    a tenth of it for bytes), ``depth`` for nested containers (30,000-deep JSON text is
    always there: it is a string)."""
    return [
        "x" * big,                               # a 10 MB string by default
        b"\x00" * (big // 10),                   # 1 MB of bytes
        10 ** 400,                               # what json.loads makes of a 400-digit integer
        -(10 ** 5000),                           # more digits than str() will print
        Fraction(10 ** 400, 3), Decimal("sNaN"), Decimal("1e999999"), complex(1, 2),
        np.zeros(200_000), np.array([object(), None, [1]], dtype=object), np.array([[np.nan, np.inf]]),
        np.float32("nan"), np.int64(2 ** 62), np.str_("75001"), np.bytes_(b"x"),
        _deep(depth, "list"), _deep(depth, "dict"), _cyclic("dict"), _cyclic("list"),
        "[" * 30_000 + "]" * 30_000, ("{\"a\": " + "[" * 30_000 + "]" * 30_000 + "}").encode(),  # 30,000-deep JSON
        {f"k{i}": float(i) for i in range(5000)},  # over the keys cap
        float("nan"), float("inf"), -float("inf"), 1e308, -0.0,
    ]


HUGE = huge()

ODD_KEYS = st.one_of(
    st.sampled_from(["a", "b", "c", "f0", "x.y", "", "a.0", "\ud800", "prediction", "boom", "k" * 5000]),
    st.text(max_size=8), st.integers(), st.none(), st.booleans(), st.binary(max_size=4),
    st.floats(allow_nan=True), st.tuples(st.integers(), st.text(max_size=2)), st.frozensets(st.integers(), max_size=2),
)

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10 ** 500), max_value=10 ** 500),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=20),
    st.sampled_from(["75001", "1.5", "true", "nan", "", "pro", "free"]),
)

VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.tuples(inner, inner), st.dictionaries(ODD_KEYS, inner, max_size=6),
        st.sets(st.integers(), max_size=3),
    ),
    max_leaves=25,
)


def payloads(huge_values: List[Any]):
    """One request's payload: profile-shaped dicts, odd dicts, any value, a huge one, JSON
    bytes, numpy arrays."""
    return st.one_of(
        st.dictionaries(st.sampled_from(["a", "b", "c", "f0", "prediction"]), SCALARS, max_size=5),  # profile-shaped
        st.dictionaries(ODD_KEYS, VALUES, max_size=8),
        VALUES,
        st.sampled_from(huge_values),
        st.builds(lambda v: json.dumps(v).encode(), st.dictionaries(st.sampled_from("abc"), st.integers())),
        st.lists(st.floats(allow_nan=True), max_size=70).map(np.array),
    )


PAYLOADS = payloads(HUGE)


def canon(x: Any, _stack: Optional[list] = None) -> Any:
    """A comparable, hashable form of ``x`` that survives a trip through pickle: NaN equals
    NaN, integers of any length, sets in a fixed order, a cycle as its depth.

    >>> canon({"a": [float("nan"), 10 ** 5000 > 0, {3, 1}]}) == canon({"a": [float("nan"), True, {1, 3}]})
    True
    """
    stack = _stack if _stack is not None else []
    if any(x is s for s in stack):
        return ("cycle", next(i for i, s in enumerate(stack) if s is x))
    if isinstance(x, bool) or x is None or isinstance(x, (str, bytes)):
        return (type(x).__name__, x)
    if isinstance(x, int):
        return ("int", hex(x))
    if isinstance(x, float):
        return ("float", x.hex())
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            return ("ndarray", "object", x.shape, tuple(canon(v, stack) for v in x.ravel()))
        return ("ndarray", x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, np.generic):
        return ("np", type(x).__name__, canon(x.item(), stack))
    if isinstance(x, (list, tuple, dict, set, frozenset)):
        stack.append(x)
        try:
            if isinstance(x, dict):
                return ("dict", tuple((canon(k, stack), canon(v, stack)) for k, v in x.items()))
            items = tuple(canon(v, stack) for v in x)
            if isinstance(x, (set, frozenset)):
                items = tuple(sorted(items, key=repr))
            return (type(x).__name__, items)
        finally:
            stack.pop()
    if type(x) is object:  # its repr names an address, which a trip through pickle changes
        return ("object",)
    if isinstance(x, BaseException):
        return ("exception", type(x).__name__, canon(x.args, stack))
    try:
        return (type(x).__name__, repr(x))
    except Exception:  # noqa: BLE001 - a value that cannot print itself
        return (type(x).__name__, id(type(x)))
