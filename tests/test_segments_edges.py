"""Issue 12 at the edges, without Ray: the configuration (settings, checks, default rules),
rules on the segment labels (one alert per segment; a rule that names no segment label reads
the model-wide series), the exports (Prometheus, Datadog, Grafana), the /metrics exposition
of families that hold both label sets, ``raywatch status``'s block and the report's section.
"""

from __future__ import annotations

import click
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from raywatch.alerts.rules import RuleSet
from raywatch.config import AlertingConfig, AlertRuleConfig, ConfigError, MonitorConfig, parse_config
from raywatch.export import datadog_monitors, grafana_dashboard, prometheus_rules
from raywatch.series import Series


def test_settings_and_their_checks():
    cfg = parse_config({"segments": {"columns": {"country": {}, "plan": {"source": "header", "field": "X-Plan"}},
                                     "top_k": 5},
                        "fairness": {"attributes": {"sex": {}}, "favourable": True},
                        "attribution": {"replicas": {"alpha": 0.001}}})
    assert cfg.segments.columns["plan"].field == "X-Plan" and cfg.fairness.attributes["sex"].source == "attribute"
    assert MonitorConfig.from_data(cfg.to_data()) == cfg
    with pytest.raises(ConfigError, match=r"m.yaml: segments.top_k: Input should be less than or equal to 1000"):
        parse_config({"segments": {"top_k": 5000}}, source="m.yaml")
    with pytest.raises(ConfigError, match="fairness.attributes sex have hash: true; set segments.hash_key"):
        parse_config({"fairness": {"attributes": {"sex": {"hash": True}}}})
    with pytest.raises(ConfigError, match=r"segments.columns.x.source: Input should be 'feature', 'route'"):
        parse_config({"segments": {"columns": {"x": {"source": "cookie"}}}})


def test_the_hash_key_is_a_secret_written_as_its_reference(monkeypatch):
    monkeypatch.setenv("RW_HASH", "k3y")
    cfg = parse_config({"segments": {"hash_key": "${RW_HASH}", "columns": {"email": {"hash": True}}}})
    assert cfg.segments.hash_key.get_secret_value() == "k3y"
    assert cfg.to_data()["segments"]["hash_key"] == "${RW_HASH}" and "k3y" not in str(cfg.to_data())


def test_rules_may_read_the_segment_labels_of_segmented_metrics_only():
    r = AlertRuleConfig(name="A", expr='accuracy{segment_column="country", segment!="__other__"} < 0.8')
    assert r.metric == "accuracy"
    with pytest.raises(ValueError, match="metric 'requests_total' has no label 'segment'"):
        AlertRuleConfig(name="B", expr='requests_total{segment="fr"} > 1')
    with pytest.raises(ValueError, match="has no label 'segmnt'"):
        AlertRuleConfig(name="C", expr='accuracy{segmnt="fr"} < 1')


def _series(value_by_segment, model_wide):
    base = {"app": "a", "deployment": "M", "model": "m", "version": "v"}
    out = [Series("accuracy", base, model_wide)]
    out += [Series("accuracy", dict(base, segment_column="country", segment=s), v) for s, v in value_by_segment.items()]
    return out


def test_a_segment_rule_yields_one_alert_per_segment_and_a_plain_rule_none():
    rs = RuleSet([AlertRuleConfig(name="Seg", expr='accuracy{segment_column="country"} < 0.8'),
                  AlertRuleConfig(name="Model", expr="accuracy < 0.8")])
    alerts = rs.evaluate(_series({"fr": 0.5, "de": 0.95, "it": 0.7}, 0.9), now=0)
    assert sorted((a.name, a.labels.get("segment")) for a in alerts) == [("Seg", "fr"), ("Seg", "it")]
    alerts = rs.evaluate(_series({"fr": 0.9}, 0.5), now=1)
    assert sorted((a.name, a.labels.get("segment"), a.state) for a in alerts) == [
        ("Model", None, "firing"), ("Seg", "fr", "resolved"), ("Seg", "it", "resolved")]


def _rules(*rules):
    return AlertingConfig.model_validate({"rules": list(rules)})


def test_exports_know_the_segment_labels():
    cfg = _rules({"name": "Seg", "expr": 'accuracy{segment_column="country"} < 0.8', "for": "5m"},
                 {"name": "Model", "expr": "accuracy < 0.8", "for": "5m"},
                 {"name": "Fair", "expr": "fairness_disparate_impact < 0.8", "for": "1h"})
    prom = {r["alert"]: r["expr"] for r in prometheus_rules(cfg)["groups"][0]["rules"]}
    assert prom == {"Seg": 'raywatch_accuracy{segment_column="country"} < 0.8',
                    "Model": 'raywatch_accuracy{segment=""} < 0.8',
                    "Fair": "raywatch_fairness_disparate_impact < 0.8"}
    dd = {m["name"]: m["query"] for m in datadog_monitors(cfg)}
    assert dd["[raywatch] Seg"] == ("max(last_5m):avg:raywatch.accuracy{segment_column:country} "
                                    "by {app,deployment,model,version,segment_column,segment} < 0.8")
    assert dd["[raywatch] Model"].startswith("max(last_5m):avg:raywatch.accuracy{!segment:*} by {app,deployment,model,version}")
    assert "by {app,deployment,model,version,attribute}" in dd["[raywatch] Fair"]
    dash = grafana_dashboard(cfg)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert any("segment_column, segment" in e and 'segment!=""' in e for e in exprs)
    assert any("raywatch_fairness_disparate_impact" in e for e in exprs)
    assert any("raywatch_replica_outlier_score" in e for e in exprs)


def test_monitor_exports_carry_the_default_rules():
    cfg = MonitorConfig.model_validate({"fairness": {"attributes": {"sex": {}}},
                                        "alerting": {"sinks": [{"name": "log", "type": "log"}]}})
    rules = {r["alert"]: r for r in prometheus_rules(cfg)["groups"][0]["rules"]}
    assert rules["DisparateImpact"]["expr"] == "raywatch_fairness_disparate_impact < 0.8"
    assert rules["DisparateImpact"]["for"] == "1h" and rules["ReplicaOutlier"]["expr"] == "raywatch_replica_outlier > 0"
    off = MonitorConfig.model_validate({"fairness": {"attributes": {"sex": {}}, "default_rules": False},
                                        "attribution": {"replicas": {"default_rule": False}},
                                        "alerting": {"sinks": [{"name": "log", "type": "log"}]}})
    assert prometheus_rules(off)["groups"][0]["rules"] == []
    yaml.safe_dump(prometheus_rules(cfg))


def test_metrics_families_hold_model_wide_and_per_segment_samples():
    from raywatch.actor.exposition import StatsCollector
    from raywatch.aggregate import StatsCore

    core = StatsCore(MonitorConfig(actor={"sqlite_path": None}))
    core.register_model("a/M", None, None)
    core.models["a/M"].series = _series({"fr": 0.5, "de": 0.9}, 0.8)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatsCollector(core))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    got = sorted((s.labels.get("segment", ""), s.value) for s in fams["raywatch_accuracy"].samples)
    assert got == [("", 0.8), ("de", 0.9), ("fr", 0.5)]


def test_status_names_the_worst_segment_fairness_replicas_and_attribution():
    from raywatch.cli.status import segment_lines

    m = {"rolling": {
        "segments": {"country": [
            {"segment": "fr", "rows": 300, "dataset_drift": True, "drifted_columns": ["amount"],
             "drifted_features_share": 0.5, "performance": {"accuracy": 0.61}, "error_rate": 0.01},
            {"segment": "de", "rows": 900, "dataset_drift": False, "drifted_columns": [], "performance": {"accuracy": 0.99}}]},
        "fairness": {"sex": {"reference": "m", "adverse_impact": ["f"],
                             "disparate_impact": {"value": 0.7, "low": 0.6, "high": 0.8, "tested": True},
                             "demographic_parity_difference": {"value": 0.1, "tested": True},
                             "equalized_odds_difference": {"tested": False, "note": "too few rows"}}},
        "replica_outliers": {"v1": {"outliers": ["r2"], "replicas": {"r1": {}, "r2": {"differing": ["amount"]},
                                                                      "r3": {}}}},
        "attribution": {"score": {"shift": 0.2, "features": [{"feature": "amount", "share": 0.9, "explains": True}]}},
    }}
    text = click.unstyle("\n".join(segment_lines(m)))
    assert "worst segments:" in text and text.index("country=fr") < text.index("country=de")
    assert "accuracy 0.61" in text and "DRIFT" in text
    assert "fairness sex: disparate impact 0.7 [0.6, 0.8] (reference m)" in text and "below four-fifths: f" in text
    assert "equalized odds difference untested (too few rows)" in text
    assert "replica outliers (version v1): r2 (amount) among 3 replicas" in text
    assert "attribution: score mean moved 0.2; explained by amount 90%" in text


def test_the_report_names_the_worst_segment_and_shows_fairness():
    from raywatch.report import render_report

    w = {"start": 0, "end": 60, "requests": 10,
         "segments": {"merchant_category": [
             {"segment": "grocery", "rows": 120, "dataset_drift": True, "drifted_columns": ["amount"],
              "performance": {"accuracy": 0.74}},
             {"segment": "travel", "rows": 40, "dataset_drift": False, "drifted_columns": [],
              "performance": {"accuracy": 0.99}}]},
         "fairness": {"sex": {"reference": "m", "confidence": 0.95, "min_group_size": 30, "adverse_impact": [],
                              "groups": {"f": {"selection_rate": {"value": 0.3, "low": 0.2, "high": 0.4, "tested": True}}},
                              "group_rows": {"f": 50},
                              "disparate_impact": {"value": 0.9, "low": 0.8, "high": 1.0, "tested": True}}},
         "attribution": {"probability": {"shift": 0.1, "features": [{"feature": "amount", "explained": 0.09,
                                                                     "share": 0.9, "z": 12.0, "explains": True}]}}}
    page = render_report({"models": {"fraud/M": {"labels": {}, "features": {}, "windows": [w]}}, "alerts": []})
    assert "merchant_category=grocery" in page and page.index("grocery") < page.index("travel")
    assert "fairness: sex" in page and "why probability drifted" in page
    assert "<script" not in page
