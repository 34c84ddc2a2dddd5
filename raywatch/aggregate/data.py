"""Plain data for what the stats actor stores: versioned JSON records and their helpers.

Every record the store keeps (a model's state, the feedback joiner, an alert engine's state,
counters, a journal entry, a configuration) is a JSON object that names its format and
version::

    {"format": "raywatch.model-state", "version": 1, ...}

:func:`record` makes one, :func:`fields` checks the name and version of one read back.
:func:`encode` writes JSON as Python's ``json`` does, NaN and infinities included (a closed
window's ``-Infinity`` bound), with numpy scalars as plain numbers; anything else that is not
JSON (an object, bytes, a set) is an error rather than a silent ``str()``. Bytes travel as
base64 text (:func:`b64`) or in a BLOB column of their own.

>>> import numpy as np
>>> text = encode(record("raywatch.example", 1, n=np.int64(3), bound=float("-inf")))
>>> text
'{"format":"raywatch.example","version":1,"n":3,"bound":-Infinity}'
>>> fields(decode(text), "raywatch.example", 1)["n"]
3
>>> fields({"format": "raywatch.example", "version": 9}, "raywatch.example", 1)
Traceback (most recent call last):
...
raywatch.aggregate.data.FormatMismatch: raywatch.example version 9, this raywatch reads version 1
>>> scalar(np.float32(0.5)), scalar("spam")
(0.5, 'spam')
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["FormatMismatch", "record", "fields", "encode", "encode_lenient", "decode", "b64", "unb64", "scalar",
           "plain", "seq_ranges", "from_ranges", "report_json"]


class FormatMismatch(ValueError):
    """A stored record of another format or version than the reader expects."""


def record(fmt: str, version: int, **values: Any) -> Dict[str, Any]:
    """A record of format ``fmt``, version ``version``."""
    return {"format": fmt, "version": int(version), **values}


def fields(data: Any, fmt: str, version: int) -> Dict[str, Any]:
    """``data`` itself once checked to be a record of ``fmt``, version ``version``."""
    if not isinstance(data, dict) or data.get("format") != fmt:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise FormatMismatch(f"expected a {fmt} record, got {got!r}")
    if data.get("version") != version:
        raise FormatMismatch(f"{fmt} version {data.get('version')!r}, this raywatch reads version {version}")
    return data


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"a {type(o).__name__} is not stored data (expected numbers, strings, lists, mappings)")


def encode(data: Any) -> str:
    """Compact JSON text of ``data`` (see the module docstring)."""
    return json.dumps(data, default=_default, separators=(",", ":"))


def encode_lenient(data: Any, on_bad: Callable[[str, BaseException], None]) -> str:
    """:func:`encode`, except that a value that is not stored data costs only itself: it
    is written as null and ``on_bad(path, error)`` is called for it (a value that slipped
    into a model's state must not make every checkpoint of the model fail).

    >>> bad = []
    >>> encode_lenient({"ok": 1, "res": {"x": {1, 2}, "y": 2.0}}, lambda path, exc: bad.append(path))
    '{"ok":1,"res":{"x":null,"y":2.0}}'
    >>> bad
    ['res.x']
    """
    try:
        return encode(data)
    except (TypeError, ValueError):
        return encode(plain(data, on_bad))


def plain(data: Any, on_bad: Callable[[str, BaseException], None], path: str = "") -> Any:
    """``data`` with every value :func:`encode` refuses replaced by None (``on_bad`` called)."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            sub = f"{path}.{k}" if path else str(k)
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                on_bad(sub, TypeError(f"a {type(k).__name__} key is not stored data"))
                continue
            out[k] = plain(v, on_bad, sub)
        return out
    if isinstance(data, (list, tuple)):
        return [plain(v, on_bad, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, (str, int, float, bool)) or data is None:
        return data
    try:
        return json.loads(encode(data))
    except (TypeError, ValueError) as exc:
        on_bad(path, exc)
        return None


def decode(text: str) -> Any:
    return json.loads(text)


def b64(blob: Optional[bytes]) -> Optional[str]:
    return None if blob is None else base64.b64encode(blob).decode("ascii")


def unb64(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else base64.b64decode(text.encode("ascii"), validate=True)


_SCALARS = (str, int, float, bool, type(None))


def scalar(value: Any) -> Any:
    """``value`` as a JSON scalar (numpy scalars become Python numbers); TypeError for
    anything else (labels and predictions are stored, so they must be plain values)."""
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, _SCALARS):
        raise TypeError(f"expected a number, string, boolean or null, got a {type(value).__name__}")
    return value


def seq_ranges(seqs: Any) -> List[Tuple[int, int]]:
    """Sorted integers as inclusive ``(first, last)`` runs (a replica's seen sequence numbers).

    >>> seq_ranges({1, 2, 3, 7, 9, 10})
    [(1, 3), (7, 7), (9, 10)]
    >>> sorted(from_ranges([(1, 3), (7, 7)]))
    [1, 2, 3, 7]
    """
    out: List[Tuple[int, int]] = []
    for s in sorted(int(x) for x in seqs):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def from_ranges(ranges: Any) -> set:
    return {s for first, last in ranges for s in range(int(first), int(last) + 1)}


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _lenient(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, bytes):
        return o.hex()
    return str(o)


def report_json(obj: Any) -> str:
    """JSON for readers other than raywatch (the history tables, ``/status``): NaN and
    infinities become null, numpy values plain numbers, anything else its text.

    >>> report_json({"p": float("nan"), "n": np.int64(2)})
    '{"p":null,"n":2}'
    """
    return json.dumps(_finite(obj), default=_lenient, separators=(",", ":"))
