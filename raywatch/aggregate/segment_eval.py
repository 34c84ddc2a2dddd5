"""Who is affected, per window and in the rolling view: segments, fairness, attribution, replicas.

:func:`evaluate_segments_of` is called by :class:`~raywatch.aggregate.evaluate.Evaluator`
for every window result (each closed window, and the rolling view) of a model whose window
holds a :class:`~raywatch.aggregate.segment_window.SegmentWindow`. It adds to the result:

``segments``
    per segment column, one entry per bucket (the kept values and ``__other__``), **worst
    first**: drift and data quality against the reference profile
    (:func:`~raywatch.drift.segmented.evaluate_segments`, the level divided across the buckets
    tested with ``segments.correct_across_segments``), performance from the labels joined in
    the segment, requests, error rate and latency percentiles. Worst means: data drifted, then
    a larger share of drifted columns, more data-quality issues, worse performance (lower
    accuracy or higher MAE), a higher error rate, more traffic. A feature that is itself a
    segment column is left out of the per-segment tests (one segment holds one of its values).
    The rolling view's entries carry each feature's test and quality shares (for the series);
    a closed window's stay compact (what the history keeps).
``fairness``
    per protected attribute, :func:`~raywatch.drift.fairness.assess_fairness` of its groups'
    counts (predictions from the replicas, outcomes from the joined labels), with the rows of
    each group (``group_rows``).
``attribution``
    per prediction whose distribution drifted (and that the profile holds a reference table
    for), :func:`~raywatch.drift.attribution.attribute_shift` over the drifted features (all of
    them when none drifted).
``replica_outliers``
    per model version, :func:`~raywatch.drift.replica_outlier.find_outlier_replicas` of the
    replicas that sent rows (three at least), with their latency sketches.

:func:`default_rule_groups` gives the default rules of :func:`raywatch.config.segments.
default_rules` (fairness, replica outliers) their own alerting group per model: the same
route, sinks and inhibition as the model's alerting, so the engine of the model's own rules,
and the state it restores after a restart or an upgrade, is the one it always was.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Tuple

from raywatch import series
from raywatch.aggregate import models as registry
from raywatch.aggregate.model import ModelState
from raywatch.config import AlertingConfig, MonitorConfig, default_rules
from raywatch.drift.attribution import attribute_shift
from raywatch.drift.attribution_tables import reference_tables
from raywatch.drift.fairness import assess_fairness
from raywatch.drift.replica_outlier import find_outlier_replicas
from raywatch.drift.segmented import evaluate_segments
from raywatch.stats.labels import OTHER, segment_label
from raywatch.stats.memo import IdentityCache

__all__ = ["evaluate_segments_of", "default_rule_groups", "worst_segments", "SEGMENTS", "FAIRNESS", "ATTRIBUTION",
           "REPLICA_OUTLIERS"]

log = logging.getLogger("raywatch.aggregate.segment_eval")

SEGMENTS, FAIRNESS, ATTRIBUTION, REPLICA_OUTLIERS = "segments", "fairness", "attribution", "replica_outliers"
"""The keys this module adds to a window result."""

_PERF = tuple(m.name for m in series.PERFORMANCE)
_QUALITY = tuple(m.name for m in series.QUALITY_SHARES)
_drift_configs = IdentityCache(256)  # (model config, profile) → the per-segment drift settings
_defaults = IdentityCache(1024)  # (alerting config, model config), peers → the default rules' config


def _default_alerting(base: AlertingConfig, cfg: MonitorConfig, peers: bool) -> Tuple[Any, frozenset]:
    """(the alerting config of the default rules, the metrics they read), or (None, ...);
    ``peers``: the model has the three replicas a replica outlier needs."""
    hit = _defaults.get((base, cfg), tag=peers)
    if hit is not None:
        return hit
    out: Tuple[Any, frozenset] = (None, frozenset())
    if base.rules or base.sinks:
        have = {r.name for r in base.rules}
        rules = [r for r in default_rules(cfg) if r.name not in have
                 and (peers or r.metric != series.REPLICA_OUTLIER.name)]
        if rules:
            out = (base.model_copy(update={"rules": rules}), frozenset(r.metric for r in rules))
    return _defaults.put((base, cfg), out, tag=peers)


def default_rule_groups(ms: ModelState, actor_config: MonitorConfig) -> List[Tuple[Any, ...]]:
    """The alerting group of the default rules of ``ms`` (none when they are off, overridden
    by rules of the same name, or when the model's alerting has neither rules nor sinks; the
    replica rule only once the model has had three replicas):
    ``[(alerting config, the series those rules read, False)]``."""
    peers = len(ms.replicas) >= 3
    cfg, metrics = _default_alerting(registry.alerting_for(ms, actor_config), ms.config, peers)
    if cfg is None:
        return []
    return [(cfg, [s for s in ms.series if s.name in metrics], False)]


def _drift_config(cfg: MonitorConfig, profile: Any) -> Any:
    """The drift settings of the per-segment tests: the model's, with the features that are
    segment columns switched off."""
    hit = _drift_configs.get((cfg, profile))
    if hit is not None:
        return hit
    specs = getattr(profile, "specs", {}) or {}
    off = set(cfg.segments.feature_fields().values())
    data = cfg.drift.model_dump()
    for f in off & set(specs):
        data["columns"][f] = dict(data["columns"].get(f) or {}, enabled=False)
    out = type(cfg.drift).model_validate(data) if off & set(specs) else cfg.drift
    return _drift_configs.put((cfg, profile), out)


def _badness(perf: Dict[str, Any]) -> float:
    if perf.get(series.ACCURACY.name) is not None:
        return 1.0 - perf[series.ACCURACY.name]
    if perf.get(series.MAE.name) is not None:
        return perf[series.MAE.name]
    return 0.0


def _worst_first(e: Dict[str, Any]) -> tuple:
    return (not e.get(series.DATASET_DRIFT.name), -(e.get(series.DRIFTED_FEATURES_SHARE.name) or 0.0),
            -e.get("quality_issues", 0), -_badness(e.get("performance") or {}),
            -(e.get(series.ERROR_RATE.name) or 0.0), -max(e.get("rows", 0), e.get("requests", 0)))


def _segments(ms: ModelState, sw: Any, detail: bool, fail: Callable[[str, BaseException], None]) -> Dict[str, Any]:
    cfg = ms.config
    summaries, traffic, perf = sw.summaries, sw.traffic, sw.perf
    entries: Dict[str, Dict[str, Dict[str, Any]]] = {}

    def entry(col: str, label: str) -> Dict[str, Any]:
        return entries.setdefault(col, {}).setdefault(label, {"segment": label, "rows": 0, "missed_rows": 0,
                                                              "requests": 0, "quality_issues": 0, "performance": {}})

    if ms.profile is not None and summaries is not None and summaries.columns:
        try:
            verdicts = evaluate_segments(ms.profile, summaries, drift_config=_drift_config(cfg, ms.profile),
                                         performance=perf, correct_across_segments=cfg.segments.correct_across_segments,
                                         include_other=cfg.segments.evaluate_other,
                                         reference_columns=cfg.segments.feature_fields())
        except Exception as exc:
            fail("segments.drift", exc)
            verdicts = {}
        for col, vs in verdicts.items():
            for v in vs:
                e = entry(col, v.segment)
                d = v.drift
                tested = {n: c for n, c in d.columns.items() if c.tested}
                e.update(rows=v.rows, missed_rows=v.missed_rows, quality_issues=v.quality_issues,
                         drifted_columns=list(d.drifted_columns), reference=v.reference)
                if tested:
                    e[series.DATASET_DRIFT.name] = bool(d.dataset_drift)
                    e[series.DRIFTED_FEATURES_SHARE.name] = d.drift_share
                if v.performance:
                    e["performance"] = dict(v.performance)
                if detail:
                    e["drift"] = {n: {"method": c.method, "statistic": c.statistic, "p_value": c.p_value,
                                      "p_value_adjusted": c.p_value_adjusted, "drifted": bool(c.drifted)}
                                  for n, c in tested.items()}
                    e["quality"] = {n: {k: getattr(q, k) for k in _QUALITY} for n, q in d.quality.items()}
    if perf is not None:  # segments with labels but no rows of their own
        for col in perf.columns:
            for label, acc, _ in perf.items(col):
                e = entry(col, label)
                if not e["performance"] and acc is not None:
                    e["performance"] = dict(acc.result())
    if traffic is not None:
        for col in traffic.columns:
            for label, t, _ in traffic.items(col):
                if t is None:
                    continue
                e = entry(col, label)
                e.update(requests=t.requests, errors=t.errors)
                e[series.ERROR_RATE.name] = t.error_rate
                for m, q in series.LATENCY_QUANTILES:
                    e[m.name] = t.latency.quantile(q) if t.latency.count else None
    for col, by_label in entries.items():
        for e in by_label.values():
            rows = (e["performance"] or {}).get("rows")
            if rows is not None:
                e[series.FEEDBACK_ROWS.name] = rows
    return {col: sorted(by_label.values(), key=_worst_first) for col, by_label in entries.items()}


def _fairness(ms: ModelState, sw: Any) -> Dict[str, Any]:
    fair = sw.fairness
    cfg = ms.config
    if fair is None:
        return {}
    key = cfg.segments.hash_key.get_secret_value().encode("utf-8") if cfg.segments.hash_key is not None else None
    out = {}
    for attr in fair.columns:
        acfg = cfg.fairness.attributes.get(attr)
        groups = {label: g for label, g, _ in fair.items(attr) if g is not None}
        if not groups:
            continue
        ref = acfg.reference if acfg is not None else "best"
        if acfg is not None and acfg.hash and ref != "best" and key is not None:
            ref = segment_label(ref, cfg.segments.max_label_length, key)
        rep = assess_fairness(groups, reference=ref, min_group_size=cfg.fairness.min_group_size,
                              confidence=cfg.fairness.confidence, four_fifths=cfg.fairness.four_fifths, attribute=attr)
        d = rep.to_dict()
        d["group_rows"] = {label: int(g.counts["predictions"]) for label, g in groups.items() if label != OTHER}
        out[attr] = d
    return out


def _attribution(ms: ModelState, sw: Any, drift: Dict[str, Any]) -> Dict[str, Any]:
    cfg = ms.config.attribution
    if not cfg.enabled or not sw.attribution or ms.profile is None:
        return {}
    refs = reference_tables(ms.profile)
    out = {}
    for pred, table in sw.attribution.items():
        ref = refs.get(pred)
        if ref is None or not (drift.get(pred) or {}).get("drifted"):
            continue
        drifted = [f for f in table.features if (drift.get(f) or {}).get("drifted")]
        out[pred] = attribute_shift(ref, table, drifted or None, alpha=cfg.alpha, min_share=cfg.min_share).to_dict()
    return out


def _replica_outliers(ms: ModelState, sw: Any) -> Dict[str, Any]:
    rc = ms.config.attribution.replicas
    if not rc.enabled or ms.profile is None or len(sw.replicas) < 3:
        return {}
    by_version: Dict[str, Dict[str, Any]] = {}
    for rid, (version, summary, sketch) in sw.replica_parts().items():
        if summary is not None and summary.fingerprint == ms.profile.fingerprint:
            by_version.setdefault(version, {})[rid] = (summary, sketch)
    out = {}
    for version, parts in by_version.items():
        if len(parts) < 3:
            continue
        report = find_outlier_replicas({r: p[0] for r, p in parts.items()}, ms.profile,
                                       latency={r: p[1] for r, p in parts.items() if p[1].count},
                                       alpha=rc.alpha, correction=rc.correction,
                                       min_effect_numerical=rc.min_effect_numerical,
                                       min_effect_categorical=rc.min_effect_categorical,
                                       min_latency_ratio=rc.min_latency_ratio, min_rows=rc.min_rows)
        out[version] = report.to_dict()
    return out


def evaluate_segments_of(ms: ModelState, w: Any, res: Dict[str, Any], *, detail: bool,
                         fail: Callable[[str, BaseException], None]) -> None:
    """Add the segment, fairness, attribution and replica results of window ``w`` to ``res``
    (see the module docstring); a part that fails is counted under its stage and left out."""
    sw = getattr(w, "segments", None)
    if sw is None:
        return
    for key, stage, compute in (
        (SEGMENTS, "segments", lambda: _segments(ms, sw, detail, fail)),
        (FAIRNESS, "fairness", lambda: _fairness(ms, sw)),
        (ATTRIBUTION, "attribution", lambda: _attribution(ms, sw, res.get("drift") or {})),
        (REPLICA_OUTLIERS, "replica_outliers", lambda: _replica_outliers(ms, sw)),
    ):
        try:
            value = compute()
        except Exception as exc:
            fail(stage, exc)
            continue
        if value:
            res[key] = value


def worst_segments(res: Dict[str, Any], n: int = 3) -> List[Tuple[str, Dict[str, Any]]]:
    """The ``n`` worst segments across columns of a result, worst first."""
    flat = [(col, e) for col, es in (res.get(SEGMENTS) or {}).items() for e in es]
    return sorted(flat, key=lambda ce: _worst_first(ce[1]))[:n]

