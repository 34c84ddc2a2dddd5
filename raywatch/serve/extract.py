"""Turning a request's arguments and its result into feature and prediction rows.

This runs *off* the request path, on the replica's flusher thread, on references the
request path kept (the call's arguments and its return value). A request may carry several
rows (a list of records, a 2-D array, a DataFrame), so extractors return a list of row
dicts, bounded by ``max_rows_per_request``.

Default feature extraction, by payload type (the first positional argument, or the keyword
arguments when there are no positional ones):

* ``dict`` — scalar values by key; nested dicts flatten to ``"outer.inner"``; short
  numeric lists to ``"key.0"``, ``"key.1"``, ...
* ``list`` / ``tuple`` of scalars, 1-D ``numpy`` array — one row, columns named by
  ``feature_names`` or ``"f0"``, ``"f1"``, ...; a list of dicts, a list of lists and a 2-D
  array are several rows.
* ``bytes`` / ``str`` holding JSON — parsed, then as above.
* ``starlette.requests.Request`` — the body is never read here (that would consume it for
  the user's code); the JSON the user's code already parsed (``await request.json()``) or the
  body it already read is used when present, else the query parameters.
* pandas ``DataFrame`` — its records.

Default prediction extraction: a scalar is the column ``prediction``; a dict contributes its
scalar values by key; a list or 1-D array is one prediction per row; a starlette
``JSONResponse`` is parsed from its body.

An allow-list (``fields``, glob patterns) keeps only the named feature columns; redaction
(``redact``, glob patterns) drops matching columns or replaces their values with a stable
hash (``redact_mode="hash"``) so that drift on them can still be measured.

A row has at most ``max_keys`` columns (``capture.max_keys_per_row``): a payload or a
result with more keys than that — at any nesting level — raises :class:`TooManyKeys`
before it is walked, and the batch builder counts it as a dropped payload.

>>> ex = Extractor(fields=["age", "income", "tags.*"], redact=["income"], redact_mode="hash")
>>> ex.features(({"age": 41, "income": 52000, "name": "Ann", "tags": [1, 2]},), {})
[{'age': 41, 'income': 'h:99b7424d371c', 'tags.0': 1, 'tags.1': 2}]
>>> ex.predictions({"label": "cat", "score": 0.93})
[{'label': 'cat', 'score': 0.93}]
>>> Extractor(feature_names=["a", "b"]).features(([1.5, 2.5],), {})
[{'a': 1.5, 'b': 2.5}]
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import logging
import numbers
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Extractor", "HttpPayload", "JsonBody", "TooManyKeys", "resolve_callable", "prediction_and_score"]

logger = logging.getLogger("raywatch.serve.extract")

Row = Dict[str, Any]
_SCALARS = (str, bool, int, float, type(None))
_MAX_LIST_EXPAND = 64
_MAX_DEPTH = 3


def resolve_callable(spec: Any) -> Optional[Callable]:
    """A callable from ``"module:attr"`` / ``"module.attr"``, or ``spec`` itself if callable.

    >>> resolve_callable("json:dumps") is json.dumps
    True
    """
    if spec is None or callable(spec):
        return spec
    text = str(spec)
    if ":" in text:
        module, _, attr = text.partition(":")
    else:
        module, _, attr = text.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec!r} does not name a callable")
    return obj


def _scalar(v: Any) -> Tuple[bool, Any]:
    """(is_scalar, python value) — numpy scalars become Python ones."""
    if isinstance(v, _SCALARS):
        return True, v
    if isinstance(v, np.generic):
        return True, v.item()
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return True, v.item()
    if isinstance(v, numbers.Number):
        try:
            return True, float(v)
        except Exception:  # noqa: BLE001 - no float holds it: it stays itself (wrong type, for its column alone)
            return True, v
    return False, None


_FAST_SCALARS = frozenset((str, bool, int, float, type(None)))
_STR = frozenset((str,))


class TooManyKeys(ValueError):
    """A payload or result would make a row of more than ``max_keys`` columns."""


def _flatten(obj: Mapping, prefix: str, out: Row, depth: int, limit: int) -> None:
    if len(obj) + len(out) > limit:
        raise TooManyKeys(f"a row of more than {limit} keys")
    fast = _FAST_SCALARS
    for k, v in obj.items():
        key = k if (not prefix and type(k) is str) else f"{prefix}{k}"
        if type(v) in fast:
            out[key] = v
            continue
        ok, val = _scalar(v)
        if ok:
            out[key] = val
        elif isinstance(v, Mapping) and depth < _MAX_DEPTH:
            _flatten(v, key + ".", out, depth + 1, limit)
        elif isinstance(v, (list, tuple, np.ndarray)) and len(v) <= _MAX_LIST_EXPAND and depth < _MAX_DEPTH:
            if len(out) + len(v) > limit:
                raise TooManyKeys(f"a row of more than {limit} keys")
            seq = v.ravel() if isinstance(v, np.ndarray) and v.ndim > 1 else v
            for i, item in enumerate(seq):
                ok, val = _scalar(item)
                if ok:
                    out[f"{key}.{i}"] = val
        # anything else (large arrays, objects) is not a feature


def _json_or_none(data: Any) -> Any:
    try:
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8")
        text = data.strip()
        if not text or text[0] not in "[{\"-0123456789tfn":
            return None
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # (30,000-deep JSON: not a payload)
        return None


def _starlette_payload(req: Any) -> Any:
    """What the user's code already read from a starlette Request, without reading it."""
    parsed = getattr(req, "_json", None)
    if parsed is not None:
        return parsed
    body = getattr(req, "_body", None)
    if body:
        parsed = _json_or_none(body)
        if parsed is not None:
            return parsed
    try:
        return dict(req.query_params)
    except Exception:
        return None


def _is_starlette_request(obj: Any) -> bool:
    t = type(obj)
    return t.__module__.startswith("starlette.") and hasattr(obj, "scope") and hasattr(obj, "receive")


class HttpPayload:
    """What an ASGI (``@serve.ingress``) request carried: query string and teed body.

    >>> HttpPayload(b"a=1&b=x", None).payload()
    {'a': '1', 'b': 'x'}
    >>> HttpPayload(b"", b'{"a": 1}').payload()
    {'a': 1}
    """

    __slots__ = ("query", "body", "headers")

    def __init__(self, query: bytes, body: Optional[bytes], headers: Any = None):
        self.query = query
        self.body = body
        self.headers = headers  # the ASGI scope's raw [(name, value)] list, for header segments

    def payload(self) -> Any:
        if self.body:
            parsed = _json_or_none(self.body)
            if parsed is not None:
                return parsed
        if self.query:
            from urllib.parse import parse_qsl

            return dict(parse_qsl(self.query.decode("latin-1")))
        return None


class JsonBody(bytes):
    """A JSON HTTP response body kept for prediction extraction (parsed off-path)."""


class Extractor:
    """Extracts feature and prediction rows; see the module docstring for the defaults.

    ``feature_extractor(*args, **kwargs)`` and ``prediction_extractor(result)`` (or import
    paths to them) replace the defaults; they may return a dict (one row), a list of dicts,
    or anything the default would accept (which is then extracted by the default rules).
    """

    def __init__(
        self,
        *,
        fields: Optional[Sequence[str]] = None,
        redact: Sequence[str] = (),
        redact_mode: str = "drop",
        feature_names: Optional[Sequence[str]] = None,
        feature_extractor: Any = None,
        prediction_extractor: Any = None,
        max_rows: int = 64,
        max_keys: int = 1000,
    ):
        self.fields = list(fields) if fields else None
        self.redact = list(redact)
        self.redact_mode = redact_mode
        self.feature_names = list(feature_names) if feature_names else None
        self.feature_extractor = resolve_callable(feature_extractor)
        self.prediction_extractor = resolve_callable(prediction_extractor)
        self.max_rows = int(max_rows)
        self.max_keys = int(max_keys)
        self._keep_cache: Dict[str, bool] = {}
        self._redact_cache: Dict[str, bool] = {}

    @classmethod
    def from_config(cls, capture_cfg: Any) -> "Extractor":
        return cls(
            fields=capture_cfg.fields,
            redact=capture_cfg.redact,
            redact_mode=capture_cfg.redact_mode,
            feature_names=capture_cfg.feature_names,
            feature_extractor=capture_cfg.feature_extractor,
            prediction_extractor=capture_cfg.prediction_extractor,
            max_rows=capture_cfg.max_rows_per_request,
            max_keys=capture_cfg.max_keys_per_row,
        )

    @property
    def plain(self) -> bool:
        """No custom extractors, allow-list or redaction: a flat dict payload's row is the
        dict itself (what :class:`~raywatch.serve.buffer.BatchBuilder`'s columnar path uses)."""
        return (self.feature_extractor is None and self.prediction_extractor is None
                and self.fields is None and not self.redact)

    # -------------------------------------------------------------- column filters

    def _keep(self, name: str) -> bool:
        hit = self._keep_cache.get(name)
        if hit is None:
            hit = self.fields is None or any(fnmatch.fnmatchcase(name, p) for p in self.fields)
            if len(self._keep_cache) < 10_000:
                self._keep_cache[name] = hit
        return hit

    def _redacted(self, name: str) -> bool:
        hit = self._redact_cache.get(name)
        if hit is None:
            hit = any(fnmatch.fnmatchcase(name, p) for p in self.redact)
            if len(self._redact_cache) < 10_000:
                self._redact_cache[name] = hit
        return hit

    def redaction_rule(self, name: str) -> Optional[str]:
        """The first ``redact`` pattern that removes column ``name`` (``redact_mode: drop``
        only: hashed columns are still there), or None.

        >>> Extractor(redact=["ssn", "card_*"]).redaction_rule("card_present")
        'card_*'
        """
        if self.redact_mode != "drop":
            return None
        return next((p for p in self.redact if fnmatch.fnmatchcase(name, p)), None)

    @staticmethod
    def _hash(value: Any) -> str:
        return "h:" + hashlib.sha256(repr(value).encode()).hexdigest()[:12]

    def _filter(self, row: Row) -> Row:
        if self.fields is None and not self.redact:
            return row
        out: Row = {}
        for k, v in row.items():
            if not self._keep(k):
                continue
            if self.redact and self._redacted(k):
                if self.redact_mode == "drop":
                    continue
                v = self._hash(v)
            out[k] = v
        return out

    # -------------------------------------------------------------- rows from payloads

    def _rows(self, payload: Any, scalar_name: str, depth: int = 0) -> List[Row]:
        if payload is None:
            return []
        limit = self.max_keys
        if type(payload) is dict:  # the common case first
            if len(payload) > limit:
                raise TooManyKeys(f"a row of {len(payload)} keys (at most {limit})")
            if _FAST_SCALARS.issuperset(map(type, payload.values())) and _STR.issuperset(map(type, payload)):
                return [dict(payload)]  # flat, string keys, plain scalars: nothing to flatten
            row: Row = {}
            _flatten(payload, "", row, 0, limit)
            return [row]
        ok, val = _scalar(payload)
        if ok:
            if isinstance(payload, str) and depth == 0:
                parsed = _json_or_none(payload)
                if parsed is not None and not isinstance(parsed, str):
                    return self._rows(parsed, scalar_name, depth + 1)
            return [{scalar_name: val}]
        if _is_starlette_request(payload):  # (a Request is also a Mapping over its scope)
            return self._rows(_starlette_payload(payload), scalar_name, depth + 1) if depth < 2 else []
        if isinstance(payload, Mapping):
            row = {}
            _flatten(payload, "", row, 0, limit)
            return [row]
        if isinstance(payload, (bytes, bytearray, memoryview)):
            parsed = _json_or_none(payload)
            return self._rows(parsed, scalar_name, depth + 1) if parsed is not None and depth < 2 else []
        if isinstance(payload, np.ndarray):
            width = self._width()  # (only what becomes columns is converted)
            if payload.ndim == 1:
                return [self._positional(payload[:width].tolist())]
            if payload.ndim == 2:
                return [self._positional(r) for r in payload[: self.max_rows, :width].tolist()]
            return []
        if isinstance(payload, (list, tuple)):
            if not payload:
                return []
            first = payload[0]
            if isinstance(first, Mapping):
                rows = []
                for item in payload[: self.max_rows]:
                    if isinstance(item, Mapping):
                        row = {}
                        _flatten(item, "", row, 0, limit)
                        rows.append(row)
                return rows
            if isinstance(first, (list, tuple, np.ndarray)):
                width = self._width()
                return [self._positional(list(r[:width])) for r in payload[: self.max_rows] if isinstance(r, (list, tuple, np.ndarray))]
            return [self._positional(payload)]
        to_dict = getattr(payload, "to_dict", None)
        if callable(to_dict) and hasattr(payload, "columns"):  # pandas DataFrame
            try:
                return self._rows(payload.head(self.max_rows).to_dict(orient="records"), scalar_name, depth + 1)
            except Exception:
                return []
        return []

    def _width(self) -> int:
        """How many positional values become columns."""
        return _MAX_LIST_EXPAND if self.feature_names is None else len(self.feature_names)

    def _positional(self, values: Sequence[Any]) -> Row:
        names = self.feature_names
        row: Row = {}
        for i, v in enumerate(values[:_MAX_LIST_EXPAND] if names is None else values):
            ok, val = _scalar(v)
            if not ok:
                continue
            if names is not None:
                if i >= len(names):
                    break
                row[names[i]] = val
            else:
                row[f"f{i}"] = val
        return row

    # -------------------------------------------------------------- public

    def features(self, args: Tuple, kwargs: Mapping) -> List[Row]:
        """Feature rows from a call's positional and keyword arguments (``self`` excluded)."""
        if len(args) == 1 and isinstance(args[0], HttpPayload):
            args = (args[0].payload(),)
        if self.feature_extractor is not None:
            out = self.feature_extractor(*args, **kwargs)
        elif len(args) == 1:
            out = args[0]
        elif not args:
            out = dict(kwargs) if kwargs else None
        else:
            out = list(args)
        rows = self._rows(out, "feature")
        return [self._filter(r) for r in rows[: self.max_rows]]

    def predictions(self, result: Any) -> List[Row]:
        """Prediction rows from a call's return value."""
        if isinstance(result, JsonBody):
            result = _json_or_none(result)
        if self.prediction_extractor is not None:
            result = self.prediction_extractor(result)
        else:
            result = _unwrap_response(result)
        if isinstance(result, (list, tuple)) and result and not isinstance(result[0], (Mapping, list, tuple)):
            rows = []
            for v in result[: self.max_rows]:
                ok, val = _scalar(v)
                if ok:
                    rows.append({"prediction": val})
            return rows
        if isinstance(result, np.ndarray) and result.ndim == 1:
            return [{"prediction": v} for v in result[: self.max_rows].tolist()]
        return self._rows(result, "prediction")[: self.max_rows]


def _unwrap_response(result: Any) -> Any:
    """A starlette/FastAPI Response's JSON body, or the result itself."""
    t = type(result)
    if t.__module__.startswith(("starlette.", "fastapi.")) and hasattr(result, "status_code"):
        body = getattr(result, "body", None)
        if body and "json" in str(getattr(result, "media_type", "") or ""):
            return _json_or_none(body)
        return None
    return result


_PRED_KEYS = ("prediction", "label", "class", "predicted", "y", "output")
_SCORE_KEYS = ("score", "probability", "proba", "confidence", "prob")


def prediction_and_score(row: Optional[Row]) -> Tuple[Any, Optional[float]]:
    """The (prediction, score) pair shipped for feedback joins, from one prediction row.

    >>> prediction_and_score({"label": 1, "probability": 0.8})
    (1, 0.8)
    >>> prediction_and_score({"prediction": 3.5})
    (3.5, None)
    """
    if not row:
        return None, None
    pred = None
    for k in _PRED_KEYS:
        if k in row:
            pred = row[k]
            break
    else:
        pred = next(iter(row.values()))
    score = None
    for k in _SCORE_KEYS:
        v = row.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            score = float(v)
            break
    return pred, score
