import json
import subprocess
from pathlib import Path

import pytest
import yaml

from raywatch.export import (
    alertmanager_config,
    alertmanager_config_yaml,
    datadog_monitors,
    grafana_dashboard,
    prometheus_rules,
    prometheus_rules_yaml,
    write_exports,
)
from raywatch.config import AlertingConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
ENV = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/X", "PAGERDUTY_ROUTING_KEY": "k" * 32,
       "SMTP_PASSWORD": "pw"}


@pytest.fixture
def example(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return load_config(ROOT / "configs" / "monitor-sinks.yaml")


def test_plain_example_loads_without_secrets_and_shares_the_rules(example, monkeypatch):
    for k in ENV:
        monkeypatch.delenv(k)
    plain = load_config(ROOT / "configs" / "monitor.yaml")
    assert [s.type for s in plain.alerting.sinks] == ["log"]
    assert plain.alerting.rules == example.alerting.rules


def test_committed_files_match_the_example_config(example, tmp_path):
    written = write_exports(example, tmp_path)
    for kind, path in written.items():
        committed = ROOT / "configs" / Path(path).name
        assert committed.read_text() == Path(path).read_text(), f"{committed} is stale: regenerate it ({kind})"
    for text in (Path(p).read_text() for p in written.values()):
        for secret in ENV.values():
            assert secret not in text


def test_prometheus_rules_shape(example):
    rules = prometheus_rules(example)["groups"][0]["rules"]
    by = {r["alert"]: r for r in rules}
    assert by["HighLatencyP95"]["expr"] == 'raywatch_latency_p95_seconds{segment=""} > 0.5'  # model-wide
    assert by["HighLatencyP95"]["for"] == "2m" and by["HighLatencyP95"]["keep_firing_for"] == "5m"
    assert by["FeatureDrift"]["expr"] == 'raywatch_drift_detected{feature=~".+", segment=""} > 0'
    assert by["FeatureDrift"]["labels"] == {"team": "ml", "severity": "warning"}
    assert "{{ $labels.model }}" in by["HighLatencyP95"]["annotations"]["summary"]


@pytest.mark.integration
def test_promtool_accepts_generated_rules(example, tmp_path, require_binary):
    promtool = require_binary("promtool")
    f = tmp_path / "rules.yml"
    f.write_text(prometheus_rules_yaml(example))
    r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(example.alerting.rules) + 1} rules found" in r.stdout  # + the default ReplicaOutlier


@pytest.mark.integration
def test_promtool_rejects_a_broken_rule(tmp_path, require_binary):
    """The check above can fail: a regex Prometheus (RE2) cannot compile is reported."""
    promtool = require_binary("promtool")
    cfg = AlertingConfig.model_validate({"rules": [{"name": "X", "expr": 'error_rate{model=~"(?=a)b"} > 1'}]})
    f = tmp_path / "rules.yml"
    f.write_text(prometheus_rules_yaml(cfg))
    r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


@pytest.mark.integration
def test_grafana_queries_are_valid_promql(example, tmp_path, require_binary):
    promtool = require_binary("promtool")
    dash = grafana_dashboard(example)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]] + [a["expr"] for a in dash["annotations"]["list"]]
    rules = [{"record": f"raywatch:panel_{i}", "expr": e.replace("$__rate_interval", "5m").replace("$app", ".*")
              .replace("$deployment", ".*").replace("$model", ".*")} for i, e in enumerate(exprs)]
    f = tmp_path / "panels.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_grafana_dashboard_structure(example):
    dash = grafana_dashboard(example)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "app", "deployment", "model", "segment_column"}
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24 and g["h"] > 0 and p["targets"]
        assert all(t["refId"] and t["expr"] for t in p["targets"])
    # positions do not overlap
    cells = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, p["title"]
        cells |= mine
    latency = next(p for p in dash["panels"] if p["title"] == "Latency")
    assert [s["value"] for s in latency["fieldConfig"]["defaults"]["thresholds"]["steps"]][1:] == [0.5]
    json.dumps(dash)


def test_datadog_monitors(example):
    mons = datadog_monitors(example)
    by = {m["name"]: m for m in mons}
    m = by["[raywatch] HighLatencyP95"]
    assert m["type"] == "metric alert"
    assert m["query"] == "min(last_2m):avg:raywatch.latency_p95_seconds{!segment:*} by {app,deployment,model,version} > 0.5"
    assert m["options"]["thresholds"] == {"critical": 0.5}
    assert "{{model.name}}" in m["message"] and "{{#is_alert}}" in m["message"]
    assert by["[raywatch] AccuracyDrop"]["query"].startswith("max(last_10m):avg:raywatch.accuracy{!segment:*}")
    assert "by {app,deployment,model,version,feature}" in by["[raywatch] FeatureDrift"]["query"]
    assert {"source:raywatch", "severity:critical", "alertname:HighErrorRate"} <= set(by["[raywatch] HighErrorRate"]["tags"])


def test_datadog_leaves_out_what_it_cannot_express(caplog):
    cfg = AlertingConfig.model_validate({"rules": [
        {"name": "Eq", "expr": "dataset_drift == 1"},
        {"name": "Re", "expr": 'error_rate{model=~"a[0-9]+"} > 1'},
        {"name": "Ok", "expr": 'error_rate{model=~"fraud|churn", version!="v1", app=~"shop.*"} > 1'}]})
    mons = datadog_monitors(cfg)
    assert [m["name"] for m in mons] == ["[raywatch] Ok"]
    assert "{(model:fraud OR model:churn),!version:v1,app:shop*,!segment:*}" in mons[0]["query"]
    assert "Eq" in caplog.text and "Re" in caplog.text


@pytest.mark.integration
def test_amtool_accepts_the_alertmanager_config(example, tmp_path, require_binary):
    amtool = require_binary("amtool")
    f = tmp_path / "am.yml"
    f.write_text(alertmanager_config_yaml(example))
    r = subprocess.run([amtool, "check-config", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    am = alertmanager_config(example)
    assert am["route"]["routes"][0] == {"receiver": "pagerduty+slack-ml", "matchers": ['severity="critical"'],
                                        "group_wait": "10s"}
    assert am["inhibit_rules"][0]["equal"] == ["app", "deployment", "model"]


@pytest.mark.integration
def test_prometheus_evaluates_the_exported_rules_as_raywatch_does(example, tmp_path, require_binary):
    """promtool's rule unit tests run the exported rules on a series; the alert Prometheus
    fires carries the labels and the annotation text raywatch renders for the same value."""
    from raywatch.alerts import AlertEngine, Series

    promtool = require_binary("promtool")
    labels = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v3"}
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(prometheus_rules_yaml(example))
    engine = AlertEngine.from_config(example.alerting.model_copy(update={"sinks": [], "route": None}),
                                     registry=__import__("prometheus_client").CollectorRegistry(), background=False)
    try:
        hot = [Series("error_rate", labels, 0.08), Series("dropped_records_total", labels, 1234567.0)]
        engine.evaluate(hot, now=0)
        engine.evaluate(hot, now=60)
        (ours,) = [a for a in engine.alerts() if a["alertname"] == "HighErrorRate"]
        (dropped,) = [a for a in engine.alerts() if a["alertname"] == "RecordsDropped"]
    finally:
        engine.close(1)
    assert ours["state"] == "firing"
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    test = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": f"raywatch_error_rate{{{sel}}}", "values": "0.01 0.08 0.08 0.08"},
                             {"series": f"raywatch_dropped_records_total{{{sel}}}", "values": "1234567 1234567 1234567"}],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "HighErrorRate", "exp_alerts": []},   # pending (for: 1m)
                {"eval_time": "2m", "alertname": "HighErrorRate", "exp_alerts": [{
                    "exp_labels": {k: v for k, v in ours["labels"].items() if k != "alertname"},
                    "exp_annotations": ours["annotations"],
                }]},
                {"eval_time": "2m", "alertname": "RecordsDropped", "exp_alerts": [{
                    "exp_labels": {k: v for k, v in dropped["labels"].items() if k != "alertname"},
                    "exp_annotations": dropped["annotations"],   # {{ $value }} written as Go writes floats
                }]},
            ],
        }],
    }
    tf = tmp_path / "test.yml"
    tf.write_text(yaml.safe_dump(test))
    r = subprocess.run([promtool, "test", "rules", str(tf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ours["annotations"]["summary"] == "fraud fails 8% of requests"
    assert dropped["annotations"]["summary"] == "replicas of fraud dropped 1.234567e+06 records (buffer full)"
