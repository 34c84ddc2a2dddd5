"""Answers about the models: status (the last evaluation, totals, replicas, alerts) and history.

``status`` is what ``raywatch status`` and ``/status`` show: per model its labels, current
window, rolling view (traffic, latency, drift, quality, performance, resources, streaming
detectors), totals, replicas and active alerts, plus whether its configuration's secrets are
usable (``config_secrets``). ``history`` is what the report reads: per model the closed
windows (from the store), each feature's reference and current histograms, and the alert
transitions.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

from raywatch.aggregate.estimate_eval import history_fields, readable
from raywatch.aggregate.joiner import FeedbackJoiner
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.windows import Window
from raywatch.config import MonitorConfig
from raywatch.series import CAPTURE_ERRORS_TOTAL, DATASET_DRIFT, DRIFTED_FEATURES_SHARE

__all__ = ["model_status", "actor_status", "feature_histograms", "history"]

_NOT_ROLLING = ("drift", "quality", "performance", "detectors", "resources")


def live_replicas(ms: ModelState, now: float, ttl: float) -> Dict[str, Any]:
    """The replicas of ``ms`` heard from within ``ttl`` seconds of ``now``."""
    return {rid: r for rid, r in ms.replicas.items() if now - r.last_seen <= ttl}


def model_status(ms: ModelState, *, shard: int, alerts: List[Dict[str, Any]], now: Optional[float] = None,
                 replica_ttl: float = float("inf")) -> Dict[str, Any]:
    """One model's status. ``replicas`` are the live ones (heard from within
    ``replica_ttl``); ``replicas_gone`` counts the others, still remembered (their batch
    numbers, so a late retry is still recognised) until they are retired."""
    v = ms.view or {}
    live = live_replicas(ms, now, replica_ttl) if now is not None else dict(ms.replicas)
    roll = readable(v.get("rolling") or {})  # the extension results' plain data, made now (estimate_eval.Deferred)
    return {
        "labels": dict(ms.labels),
        "shard": shard,
        "profile": ms.profile is not None,
        "profile_refused": ms.profile_refused,
        "config_secrets": ms.config_secrets,
        "evaluated_at": v.get("evaluated_at"),
        "window": v.get("window"),
        "rolling": {k: val for k, val in roll.items() if k not in _NOT_ROLLING},
        "drift": {
            DATASET_DRIFT.name: roll.get(DATASET_DRIFT.name),
            DRIFTED_FEATURES_SHARE.name: roll.get(DRIFTED_FEATURES_SHARE.name),
            "columns": roll.get("drift") or {},
        },
        "quality": roll.get("quality") or {},
        "performance": roll.get("performance") or {},
        "detectors": roll.get("detectors") or {},
        "resources": roll.get("resources") or {},
        "totals": dict(ms.totals, dropped=ms.dropped_total, capture_errors=ms.capture_errors_total,
                       errors_by_type=dict(ms.error_types)),
        "replicas": {rid: {"node_id": r.node_id, "last_seen": r.last_seen, "max_seq": r.max_seq, "requests": r.requests,
                           "dropped_total": r.dropped, CAPTURE_ERRORS_TOTAL.name: r.capture_errors_total}
                     for rid, r in live.items()},
        "replicas_gone": len(ms.replicas) - len(live),
        "generation": ms.generation,
        "generations": ms.generations,
        "registered": ms.registered,
        "label_values": len(ms.label_values),
        "refused": dict(ms.refused),
        "open_windows": sorted(ms.open),
        "alerts": alerts,
    }


def actor_status(config: MonitorConfig, models: Mapping[str, ModelState], joiner: FeedbackJoiner, *, name: str,
                 shard: int, last_evaluation: Optional[float], failures: Mapping[str, int], counters: Mapping[str, int],
                 sqlite_path: Optional[str]) -> Dict[str, Any]:
    """The actor's part of status: identity, settings, counters, failures, the feedback join,
    detectors restarted and models whose configuration lacks its secrets."""
    return {
        "name": name,
        "shard": shard,
        "shards": config.actor.shards,
        "window_length": config.windows.length,
        "rolling_windows": config.windows.rolling,
        "last_evaluation": last_evaluation,
        "failures": dict(failures),
        "counters": dict(counters),
        "feedback": dict(joiner.counters(), pending=joiner.pending()),
        "detector_restarts": sum(sum(ms.detector_restarts.values()) for ms in models.values()),
        "configs_without_secrets": sorted(k for k, ms in models.items() if ms.config_secrets != "ok"),
        "sqlite_path": sqlite_path,
    }


def feature_histograms(ms: ModelState, view: Window) -> Dict[str, Any]:
    """Reference vs current histograms per feature, for the HTML report."""
    profile = ms.profile
    if profile is None:
        return {}
    out: Dict[str, Any] = {}
    for name, kind in profile.kinds.items():
        ref = profile.histogram(name)
        if view.summary is not None:
            cur = profile.histogram(name, view.summary)
        else:
            cur = dict(ref, counts=[0] * len(ref["counts"]))
        out[name] = {"kind": kind, "reference": ref, "current": cur}
    return out


def history(models: Mapping[str, ModelState], windows: List[Dict[str, Any]], alerts: List[Dict[str, Any]],
            model_key: Optional[str], *, rolling: Callable[[ModelState], Window],
            fail: Callable[[str, BaseException], None]) -> Dict[str, Any]:
    """The history answer: ``{"models": {key: {"labels", "features", "windows"}}, "alerts": [...]}``
    from the stored ``windows`` and ``alerts`` rows and each model's ``rolling`` view."""
    out: Dict[str, Any] = {"models": {}, "alerts": []}
    by_model: Dict[str, List[Dict[str, Any]]] = {}
    for r in windows:
        r = dict(r)
        by_model.setdefault(r.pop("model_key"), []).append(r)
    for key, ms in models.items():
        if model_key is not None and key != model_key:
            continue
        feats: Dict[str, Any] = {}
        try:
            feats = feature_histograms(ms, rolling(ms))
        except Exception as exc:
            fail("history.features", exc)
        out["models"][key] = {"labels": dict(ms.labels), "features": feats, "windows": by_model.get(key, [])}
        out["models"][key].update(history_fields(ms))  # the profile's calibration (issue 13)
    for a in alerts:
        a = dict(a)
        a.pop("model_key", None)
        out["alerts"].append(a)
    return out
