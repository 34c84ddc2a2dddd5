"""Helpers for the segment, fairness and attribution tests (issue 12), imported as
``rw_segments`` (``tests/`` is on ``sys.path``): a replica's batch builder with its
segment builder, and records as the request path keeps them."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

from raywatch.config import MonitorConfig
from raywatch.serve.buffer import BatchBuilder, Labels
from raywatch.serve.extract import Extractor
from raywatch.serve.segments import SegmentBuilder
from raywatch.stats.batch import ReplicaBatch


class Ctx:
    """What Serve's request context holds for a request (the fields raywatch reads)."""

    def __init__(self, request_id: str, route: str = "/", model_id: str = "", http: bool = False):
        self.request_id = request_id
        self.route = route
        self.multiplexed_model_id = model_id
        self.is_http_request = http


def replica(cfg: Any, profile: Any, replica_id: str = "r1", version: str = "v1", app: str = "app",
            deployment: str = "Model") -> BatchBuilder:
    """A replica's BatchBuilder with its SegmentBuilder, as ReplicaMonitor makes them."""
    cfg = cfg if isinstance(cfg, MonitorConfig) else MonitorConfig.model_validate(cfg)
    labels = Labels(app, deployment, replica_id, version=version)
    b = BatchBuilder(labels, Extractor.from_config(cfg.capture), profile=profile, feedback=cfg.capture.feedback)
    b.segments = SegmentBuilder(cfg, labels, b.extractor, fail=b._failed)
    return b


def records(payloads: Sequence[Any], results: Sequence[Any], ids: Sequence[str], *,
            routes: Optional[Sequence[str]] = None, model_ids: Optional[Sequence[str]] = None,
            latencies: Optional[Sequence[float]] = None, outcomes: Optional[Sequence[Optional[str]]] = None,
            sampled: Optional[Sequence[bool]] = None) -> List[tuple]:
    """Records ``(method, t0, t1, outcome, status, ctx, args, kwargs, result, route)``, one per
    request: ``payloads[i]`` is the single argument, ``results[i]`` the answer."""
    now = time.perf_counter()
    out = []
    for i, (p, r, rid) in enumerate(zip(payloads, results, ids)):
        lat = latencies[i] if latencies is not None else 0.01
        keep = sampled is None or sampled[i]
        outcome = outcomes[i] if outcomes is not None else None
        ctx = Ctx(rid, (routes or ["/"] * len(ids))[i], (model_ids or [""] * len(ids))[i])
        out.append(("__call__", now - lat, now, outcome, None, ctx, (p,) if keep else None, {} if keep else None,
                    None if outcome is not None else r, None))
    return out


def flush(builder: BatchBuilder, payloads: Sequence[Any], results: Sequence[Any], ids: Sequence[str],
          **kw: Any) -> ReplicaBatch:
    return builder.build(records(payloads, results, ids, **kw))


def rows_of(cols: Dict[str, Any]) -> List[Dict[str, Any]]:
    names = list(cols)
    return [dict(zip(names, vals)) for vals in zip(*(list(cols[n]) for n in names))]


def assert_equals_fairlearn(report: Dict[str, Any], y_true: Any, y_pred: Any, groups: Any, tol: float = 1e-9) -> None:
    """The fairness report raywatch computed (its ``to_dict()``) holds fairlearn's values on
    the same raw data, within ``tol``: per group and across groups (each within its interval)."""
    import fairlearn.metrics as fm
    import pytest

    mf = fm.MetricFrame(metrics={"selection_rate": fm.selection_rate, "true_positive_rate": fm.true_positive_rate,
                                 "false_positive_rate": fm.false_positive_rate},
                        y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    for group, row in mf.by_group.iterrows():
        for name in ("selection_rate", "true_positive_rate", "false_positive_rate"):
            assert report["groups"][group][name]["value"] == pytest.approx(row[name], abs=tol), (group, name)
    for name in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                 "equal_opportunity_difference"):
        want = getattr(fm, name)(y_true, y_pred, sensitive_features=groups)
        assert report[name]["value"] == pytest.approx(want, abs=tol), name
        assert report[name]["low"] <= report[name]["value"] <= report[name]["high"]
