"""Payload rows from the records a replica's buffer drains (off the request path).

A record is the capture's tuple ``(method, t0, t1, outcome, status, ctx, args, kwargs,
result, route)`` (:mod:`raywatch.serve.capture`; ``t0``/``t1`` are ``perf_counter``
readings, ``args``/``result`` kept only for sampled requests). :func:`payload_rows` keeps
the sampled, successful ones that carry a request id, and gives each one row: the first
feature row the replica's extractor makes of its arguments (the capture's allow-list and
redaction applied there) and the first prediction row's prediction and score — the same
pair the replica ships for feedback joins, so a label joins to what was logged.

The replica's flusher calls it with its :class:`~raywatch.serve.extract.Extractor`, its
labels and ``prediction_and_score`` (this module sits below the Ray shell and imports none
of it), then hands the rows to :meth:`raywatch.payload.PayloadLog.add`.

>>> class Ctx:
...     request_id = "r1"
>>> class Ex:
...     def features(self, args, kwargs): return [dict(args[0])]
...     def predictions(self, result): return [result]
>>> class Labels:
...     app, deployment, model, version, replica_id = "a", "Fraud", "fraud", "v1", "rep1"
>>> recs = [("__call__", 10.0, 10.01, None, None, Ctx(), ({"amount": 5.0},), {}, {"p": 1, "s": 0.8}, None),
...         ("__call__", 10.0, 10.01, "ValueError", None, Ctx(), ({"amount": 6.0},), {}, None, None)]
>>> rows = payload_rows(recs, Labels(), Ex(), lambda row: (row["p"], row["s"]), epoch_offset=1_700_000_000.0)
>>> [(r["request_id"], r["prediction"], r["score"], r["features"], r["ts"]) for r in rows]
[('r1', 1, 0.8, {'amount': 5.0}, 1700000010.01)]
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Sequence

__all__ = ["payload_rows", "RECORD_FIELDS"]

log = logging.getLogger("raywatch.payload.rows")

RECORD_FIELDS = ("method", "t0", "t1", "outcome", "status", "ctx", "args", "kwargs", "result", "route")
"""The capture record's fields, in order (``tests/payload`` checks them against
:mod:`raywatch.serve.capture`)."""
_T1, _OUTCOME, _STATUS, _CTX, _ARGS, _KWARGS, _RESULT = 2, 3, 4, 5, 6, 7, 8


def payload_rows(records: Sequence[Sequence[Any]], labels: Any, extractor: Any,
                 prediction_and_score: Callable[[Dict[str, Any]], Any], *, epoch_offset: float,
                 errors: Any = None) -> List[Dict[str, Any]]:
    """Rows for :meth:`~raywatch.payload.PayloadLog.add` from buffer records (see the
    module docstring). ``epoch_offset`` turns a ``perf_counter`` reading into UTC epoch
    seconds; ``errors`` (a callable ``(what, exc)``) is told of each record whose extraction
    failed, which then costs only itself."""
    out: List[Dict[str, Any]] = []
    base = {"app": labels.app, "deployment": labels.deployment, "model": labels.model or labels.deployment,
            "version": labels.version, "replica": labels.replica_id}
    for r in records:
        args, result, ctx = r[_ARGS], r[_RESULT], r[_CTX]
        if args is None or result is None or r[_OUTCOME] is not None:
            continue
        status = r[_STATUS]
        if status is not None and status >= 400:
            continue
        rid = getattr(ctx, "request_id", None)
        if not rid:
            continue
        try:
            feats = extractor.features(args, r[_KWARGS] or {})
            preds = extractor.predictions(result)
            pred, score = prediction_and_score(preds[0]) if preds else (None, None)
        except Exception as exc:  # noqa: BLE001 - one bad payload costs only itself
            if errors is not None:
                errors("extract a payload row", exc)
            continue
        row = dict(base)
        row.update(ts=float(r[_T1]) + epoch_offset, request_id=str(rid), prediction=pred, score=score,
                   features=feats[0] if feats else {})
        out.append(row)
    return out
