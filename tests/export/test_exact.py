"""Every threshold and duration reads back exactly from every export. Awkward values: a
threshold of 1234567 (six significant digits would write 1234570), 0.1234567 and 1e-9; a
duration of 90061 s (1d1h1m1s) and sub-second ones. Prometheus' own rule evaluation
(promtool) decides on series values one float step either side of each threshold. Where a
target cannot express a value exactly, the export refuses it, naming the rule and field."""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
from decimal import Decimal

import pytest
import yaml

from raywatch.config import AlertingConfig, AlertRuleConfig
from raywatch.expr import parse_condition
from raywatch.export import (
    ExportError,
    alertmanager_config,
    alertmanager_config_yaml,
    datadog_monitors,
    grafana_dashboard,
    prometheus_rules,
    prometheus_rules_yaml,
    prom_duration,
)

THRESHOLDS = [1234567.0, 0.1234567, 1e-9, 98765.4321, 2.5e-7]
DURATIONS = [90061.0, 0.25, 1.001, 0.001, 61.5]
LABELS = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v3"}
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def seconds_of(prom: str) -> Decimal:
    """A Prometheus/Alertmanager duration read back, in exact decimal seconds."""
    parts = re.findall(r"(\d+)(ms|d|h|m|s)", prom)
    assert "".join(n + u for n, u in parts) == prom, prom
    return sum((Decimal(n) * _UNIT_MS[u] for n, u in parts), Decimal(0)) / 1000


def rules(*items) -> AlertingConfig:
    return AlertingConfig.model_validate({"rules": list(items), "inhibit_rules": []})


def threshold_rules(op=">"):
    return rules(*({"name": f"T{i}", "expr": f"error_rate {op} {thr!r}"} for i, thr in enumerate(THRESHOLDS)))


# --------------------------------------------------------------------------- the rule itself


@pytest.mark.parametrize("thr", THRESHOLDS)
def test_a_rules_condition_text_reads_back_exactly(thr):
    rule = AlertRuleConfig(name="T", metric="error_rate", op=">", threshold=thr)
    assert parse_condition(rule.condition())[2] == thr
    assert AlertRuleConfig(name="T", expr=rule.condition()).threshold == thr


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_rules_write_thresholds_and_durations_exactly():
    cfg = rules(*({"name": f"T{i}", "expr": f"error_rate > {thr!r}"} for i, thr in enumerate(THRESHOLDS)),
                *({"name": f"D{i}", "expr": "error_rate > 1", "for": d, "keep_firing_for": d}
                  for i, d in enumerate(DURATIONS)))
    out = {r["alert"]: r for r in prometheus_rules(cfg)["groups"][0]["rules"]}
    for i, thr in enumerate(THRESHOLDS):
        text = out[f"T{i}"]["expr"].rsplit(" ", 1)[1]
        assert float(text) == thr and "e+" not in text, text
    assert out["T0"]["expr"] == 'raywatch_error_rate{segment=""} > 1234567'  # the model-wide series
    for i, d in enumerate(DURATIONS):
        assert seconds_of(out[f"D{i}"]["for"]) == Decimal(repr(d)) == seconds_of(out[f"D{i}"]["keep_firing_for"])
    assert out["D0"]["for"] == "1d1h1m1s" and out["D1"]["for"] == "250ms" and out["D2"]["for"] == "1s1ms"


def test_a_duration_finer_than_a_millisecond_is_refused_naming_rule_and_field():
    cfg = rules({"name": "Fine", "expr": "error_rate > 1", "for": 0.0005},
                {"name": "Finer", "expr": "error_rate > 1", "keep_firing_for": 1.0001})
    with pytest.raises(ExportError) as exc:
        prometheus_rules(cfg)
    assert exc.value.problems == [
        "rule Fine: for: 0.0005s is not a whole number of milliseconds, the finest unit of a Prometheus duration",
        "rule Finer: keep_firing_for: 1.0001s is not a whole number of milliseconds, the finest unit of a Prometheus duration",
    ]


@pytest.mark.parametrize("seconds", DURATIONS + [0.0, 7 * 86400.0, 3601.0])
def test_prom_duration_round_trips(seconds):
    assert seconds_of(prom_duration(seconds)) == Decimal(repr(seconds))


def _promtool_test(promtool, tmp_path, cfg, test):
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(prometheus_rules_yaml(cfg))
    r = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    tf = tmp_path / "test.yml"
    tf.write_text(yaml.safe_dump(dict(test, rule_files=[str(rules_file)])))
    return subprocess.run([promtool, "test", "rules", str(tf)], capture_output=True, text=True, timeout=120)


def _sel(metric: str = "raywatch_error_rate", **extra) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in dict(LABELS, **extra).items()) + "}"


@pytest.mark.integration
@pytest.mark.parametrize("op", [">", ">="])
def test_prometheus_fires_one_float_step_above_each_threshold_and_not_below(op, tmp_path, require_binary):
    """Series at the next float above, at, and the next float below each threshold: only
    the values the condition holds for fire, as raywatch decides them."""
    promtool = require_binary("promtool")
    cfg = rules(*({"name": f"T{i}", "expr": f'drift_score{{feature="t{i}"}} {op} {thr!r}'}
                  for i, thr in enumerate(THRESHOLDS)))
    series, tests = [], []
    for i, thr in enumerate(THRESHOLDS):
        values = {"above": math.nextafter(thr, math.inf), "at": thr, "below": math.nextafter(thr, -math.inf)}
        for where, v in values.items():
            series.append({"series": _sel("raywatch_drift_score", feature=f"t{i}", at=where), "values": f"{v!r}x3"})
        fires = ["above", "at"] if op == ">=" else ["above"]
        tests.append({"eval_time": "1m", "alertname": f"T{i}", "exp_alerts": [
            {"exp_labels": dict(LABELS, feature=f"t{i}", at=where, severity="warning")} for where in fires]})
    r = _promtool_test(promtool, tmp_path, cfg, {"evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": series, "alert_rule_test": tests}]})
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.integration
def test_prometheus_for_is_exact(tmp_path, require_binary):
    """``for: 90061s`` is pending at 25h1m and firing at 25h2m (evaluated each minute), and
    ``for: 250ms`` pending at 200 ms and firing at 250 ms (evaluated every 50 ms)."""
    promtool = require_binary("promtool")
    long = rules({"name": "Long", "expr": "error_rate > 0.5", "for": 90061})
    firing = [{"exp_labels": dict(LABELS, severity="warning")}]
    r = _promtool_test(promtool, tmp_path, long, {"evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [{"series": _sel(), "values": "1x1510"}],
        "alert_rule_test": [{"eval_time": "25h1m", "alertname": "Long", "exp_alerts": []},
                            {"eval_time": "25h2m", "alertname": "Long", "exp_alerts": firing}]}]})
    assert r.returncode == 0, r.stdout + r.stderr
    short = rules({"name": "Short", "expr": "error_rate > 0.5", "for": "250ms"})
    r = _promtool_test(promtool, tmp_path, short, {"evaluation_interval": "50ms", "tests": [{
        "interval": "50ms", "input_series": [{"series": _sel(), "values": "1x20"}],
        "alert_rule_test": [{"eval_time": "200ms", "alertname": "Short", "exp_alerts": []},
                            {"eval_time": "250ms", "alertname": "Short", "exp_alerts": firing}]}]})
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.integration
def test_the_promtool_check_can_fail(tmp_path, require_binary):
    """The checks above can fail: a threshold rounded to six digits does not fire at 1234567 + ε."""
    promtool = require_binary("promtool")
    cfg = rules({"name": "T", "expr": "error_rate > 1234567"})
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(prometheus_rules_yaml(cfg).replace("> 1234567", f"> {1234567.0:g}"))
    test = {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [{"series": _sel(), "values": f"{math.nextafter(1234567.0, math.inf)!r}x3"}],
        "alert_rule_test": [{"eval_time": "1m", "alertname": "T",
                             "exp_alerts": [{"exp_labels": dict(LABELS, severity="warning")}]}]}]}
    tf = tmp_path / "test.yml"
    tf.write_text(yaml.safe_dump(test))
    r = subprocess.run([promtool, "test", "rules", str(tf)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


# --------------------------------------------------------------------------- Datadog


def _dd_threshold(query: str) -> Decimal:
    text = query.rsplit(" ", 1)[1]
    assert re.fullmatch(r"-?\d+(\.\d+)?", text), f"not an integer or decimal number: {text}"
    return Decimal(text)


def test_datadog_monitors_write_thresholds_exactly():
    mons = datadog_monitors(threshold_rules(">="))
    for m, thr in zip(mons, THRESHOLDS):
        assert _dd_threshold(m["query"]) == Decimal(repr(thr)) and float(_dd_threshold(m["query"])) == thr
        assert json.loads(json.dumps(m))["options"]["thresholds"]["critical"] == thr
    assert mons[0]["query"].endswith(">= 1234567") and mons[2]["query"].endswith(">= 0.000000001")


def test_datadog_windows_are_whole_minutes_or_refused():
    ok = datadog_monitors(rules({"name": "M2", "expr": "error_rate > 1", "for": "2m"},
                                {"name": "H1", "expr": "error_rate > 1", "for": "1h"},
                                {"name": "Now", "expr": "error_rate > 1"}))
    assert [m["query"].split(":", 1)[0] for m in ok] == ["min(last_2m)", "min(last_60m)", "min(last_1m)"]
    bad = rules(*({"name": f"D{i}", "expr": "error_rate > 1", "for": d} for i, d in enumerate(DURATIONS)),
                {"name": "Weeks", "expr": "error_rate > 1", "for": "15d"})
    with pytest.raises(ExportError) as exc:
        datadog_monitors(bad)
    problems = exc.value.problems
    assert len(problems) == len(DURATIONS) + 1
    assert problems[0].startswith("rule D0: for: 1d1h1m1s cannot be expressed exactly in a Datadog monitor, whose "
                                  "evaluation windows are whole minutes up to one week (last_#m); use for: 1501m or for: 1502m")
    assert problems[1].startswith("rule D1: for: 250ms cannot be expressed exactly")
    assert problems[-1].startswith("rule Weeks: for: 15d cannot be expressed exactly")


def test_datadog_refuses_a_threshold_it_cannot_write():
    with pytest.raises(ExportError, match=r"rule Inf: threshold: \+Inf cannot be written in a Datadog monitor query"):
        datadog_monitors(rules({"name": "Inf", "metric": "error_rate", "op": ">", "threshold": math.inf}))


def test_datadog_says_it_leaves_keep_firing_for_out(caplog):
    with caplog.at_level(logging.WARNING, "raywatch.export.datadog"):
        (m,) = datadog_monitors(rules({"name": "Sticky", "expr": "error_rate > 1", "for": "2m",
                                       "keep_firing_for": "90061s"}))
    assert m["query"].startswith("min(last_2m)")
    assert "rule Sticky: keep_firing_for: 1d1h1m1s has no equivalent in a Datadog metric monitor" in caplog.text


# --------------------------------------------------------------------------- Grafana and Alertmanager


def test_grafana_thresholds_are_the_rules_floats():
    dash = json.loads(json.dumps(grafana_dashboard(threshold_rules())))
    (panel,) = [p for p in dash["panels"] if p["title"] == "Error rate"]
    steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
    assert steps == sorted(THRESHOLDS)


def _am_cfg(**timers):
    return AlertingConfig.model_validate({
        "route": {"receiver": "a", "group_wait": timers.get("root", "30s"),
                  "routes": [{"matchers": ['severity="critical"'], "receiver": "a", **timers.get("child", {})}]},
        "sinks": [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:1/x"}]})


def test_alertmanager_durations_are_exact():
    am = alertmanager_config(_am_cfg(root=90061, child={"group_wait": 0.25, "group_interval": 1.001,
                                                        "repeat_interval": 61.5}))
    assert am["route"]["group_wait"] == "1d1h1m1s"
    child = am["route"]["routes"][0]
    assert [seconds_of(child[k]) for k in ("group_wait", "group_interval", "repeat_interval")] == [
        Decimal("0.25"), Decimal("1.001"), Decimal("61.5")]
    with pytest.raises(ExportError) as exc:
        alertmanager_config(_am_cfg(child={"group_wait": 0.0001}))
    assert exc.value.problems == ["route.routes[0].group_wait: 0.0001s is not a whole number of milliseconds, "
                                  "the finest unit of a Prometheus duration"]


@pytest.mark.integration
def test_amtool_accepts_the_exact_durations(tmp_path, require_binary):
    amtool = require_binary("amtool")
    f = tmp_path / "am.yml"
    f.write_text(alertmanager_config_yaml(_am_cfg(root=90061, child={"group_wait": 0.25, "group_interval": 1.001})))
    r = subprocess.run([amtool, "check-config", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
