"""The README's alerting example is real: it loads through raywatch.config and drives an engine."""

import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from alert_helpers import DirectRecordingSink, RecordingSink
from raywatch.alerts import AlertEngine, Series
from raywatch.config import MonitorConfig, parse_config

README = Path(__file__).resolve().parents[2] / "README.md"


def section_yaml() -> str:
    text = README.read_text()
    start = text.index("## Alerts and sinks")
    end = text.index("\n## ", start + 3)
    blocks = re.findall(r"```yaml\n(.*?)```", text[start:end], re.S)
    assert blocks, "the Alerts and sinks section has no YAML example"
    return blocks[0]


def test_readme_yaml_loads_and_works(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/README")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "r" * 32)
    cfg = parse_config(yaml.safe_load(section_yaml()), MonitorConfig, source="README.md")
    a = cfg.alerting
    assert [r.name for r in a.rules] == ["HighLatency", "HighErrorRate", "FeatureDrift"]
    assert a.sinks[0].webhook_url.get_secret_value().endswith("/README")
    assert a.route.routes[0].receivers() == ["pagerduty", "slack"]

    sinks = {s.name: (DirectRecordingSink if s.type == "alertmanager" else RecordingSink)(s) for s in a.sinks}
    e = AlertEngine.from_config(cfg, registry=CollectorRegistry(), background=False, sinks=sinks)
    try:
        labels = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v3"}
        series = [Series("error_rate", labels, 0.08), Series("drift_score", dict(labels, feature="age", method="psi"), 0.4)]
        e.evaluate(series, now=0)
        e.evaluate(series, now=60)
        e.tick(90)
        assert e.wait_idle(5)
        assert [n.title() for n in sinks["pagerduty"].got] == ["[FIRING:1] HighErrorRate (fraud)"]
        assert "[FIRING:1] HighErrorRate (fraud)" in [n.title() for n in sinks["slack"].got]
        assert sinks["alertmanager"].got  # direct: every firing alert
        assert {a["alertname"]: a["state"] for a in e.alerts()} == {"HighErrorRate": "firing", "FeatureDrift": "pending",
                                                                    "Watchdog": "firing"}  # on by default
    finally:
        e.close(2)


def test_readme_yaml_errors_name_the_field(monkeypatch):
    import pytest

    from raywatch.config import ConfigError

    monkeypatch.setenv("SLACK_WEBHOOK_URL", "x")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "r" * 32)
    data = yaml.safe_load(section_yaml())
    data["alerting"]["rules"][0]["for"] = "soon"
    data["alerting"]["sinks"][1]["type"] = "pagerduty2"
    with pytest.raises(ConfigError) as exc:
        parse_config(data, MonitorConfig, source="README.md")
    assert "README.md: alerting.rules[0].for: expected a duration such as '30s' or '5m', got 'soon'" in str(exc.value)
    assert "README.md: alerting.sinks[1]: expected 'type' to be one of slack" in str(exc.value)
