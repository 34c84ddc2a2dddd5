"""The alerting section of the schema: what it accepts and how its errors read."""

import pytest

from raywatch.config import AlertingConfig, ConfigError, MonitorConfig, parse_config


def problems(alerting):
    with pytest.raises(ConfigError) as exc:
        parse_config({"alerting": alerting}, MonitorConfig, source="m.yaml")
    return str(exc.value)


def test_structured_rule_equals_expr_rule():
    a = AlertingConfig.model_validate({"rules": [
        {"name": "A", "expr": 'drift_score{feature=~"a|b", method="psi"} >= 0.2', "for": "5m"},
        {"name": "A", "metric": "drift_score", "matchers": {"feature": "a"}, "op": ">=", "threshold": 0.2},
    ]})
    r0, r1 = a.rules
    assert (r0.metric, r0.op, r0.threshold, r0.for_) == ("drift_score", ">=", 0.2, 300.0)
    assert r0.matchers == ['feature=~"a|b"', 'method="psi"'] and r1.matchers == ['feature="a"']
    assert r0.condition() == 'drift_score{feature=~"a|b", method="psi"} >= 0.2'


@pytest.mark.parametrize("alerting,expected", [
    ({"rules": [{"name": "bad name", "expr": "a > 1"}]}, "alerting.rules[0].name: expected an alert name"),
    ({"rules": [{"name": "A", "expr": "a > 1", "metric": "a"}]}, "give either expr or metric/matchers/op/threshold"),
    ({"rules": [{"name": "A", "metric": "a", "op": ">"}]}, "missing threshold"),
    ({"rules": [{"name": "A", "expr": 'a{b=~"("} > 1'}]}, "alerting.rules[0].expr: bad regular expression"),
    ({"rules": [{"name": "A", "expr": "a > 1", "severity": "page"}]}, "alerting.rules[0].severity"),
    ({"rules": [{"name": "A", "expr": "a > 1", "labels": {"severity": "x"}}]}, "set by the rule itself"),
    ({"rules": [{"name": "A", "expr": "a > 1", "keep_firing_for": "-1s"}]}, "alerting.rules[0].keep_firing_for"),
    ({"rules": [{"name": "A", "expr": "a > 1", "annotations": {"s": "{{ $value | shout }}"}}]}, "unknown template function"),
    ({"route": {"receiver": "x"}}, "no sink named 'x'"),
    ({"route": {"receiver": "a", "routes": [{"receiver": "nope"}]}, "sinks": [{"name": "a", "type": "log"}]},
     "route.routes[0].receiver: no sink named 'nope'"),
    ({"route": {"receiver": "am"}, "sinks": [{"name": "am", "type": "alertmanager", "url": "http://x"}]},
     "receives every alert directly"),
    ({"route": {"receiver": "a", "group_interval": "0s"}, "sinks": [{"name": "a", "type": "log"}]},
     "alerting.route.group_interval: expected a positive duration"),
    ({"route": {"receiver": "a", "routes": [{"matchers": ["severity"]}]}, "sinks": [{"name": "a", "type": "log"}]},
     "alerting.route.routes[0].matchers: expected a matcher"),
    ({"sinks": [{"name": "a", "type": "log"}, {"name": "a", "type": "log"}]}, "repeated: a"),
    ({"sinks": [{"name": "a", "type": "email", "host": "h", "from": "x@y"}]}, "alerting.sinks[0].to: required field is missing"),
    ({"sinks": [{"name": "a", "type": "slack", "webhook_url": "u", "rate_limit": 0}]}, "alerting.sinks[0].rate_limit"),
    ({"sinks": [{"name": "a", "type": "log", "retry": {"max_attempts": 0}}]}, "alerting.sinks[0].retry.max_attempts"),
    ({"silences": [{"matchers": ['a="b"'], "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}]},
     "ends_at must be after starts_at"),
    ({"silences": [{"matchers": []}]}, "alerting.silences[0].ends_at: required field is missing"),
    ({"inhibit_rules": [{"source_matchers": ['severity="critical"']}]}, "alerting.inhibit_rules[0].target_matchers"),
    ({"rulez": []}, "alerting.rulez: unknown field"),
])
def test_errors_name_the_field(alerting, expected):
    assert expected in problems(alerting)


def test_secret_from_environment_is_hidden(monkeypatch):
    monkeypatch.setenv("RW_TEST_KEY", "sekrit-value")
    a = AlertingConfig.model_validate({"sinks": [{"name": "pd", "type": "pagerduty", "routing_key": "${RW_TEST_KEY}"}]})
    assert a.sinks[0].routing_key.get_secret_value() == "sekrit-value"
    assert "sekrit-value" not in repr(a) and "sekrit-value" not in a.model_dump_json()


def test_default_inhibition_and_empty_list():
    assert len(AlertingConfig().inhibit_rules) == 1
    assert AlertingConfig.model_validate({"inhibit_rules": []}).inhibit_rules == []


def test_dumped_config_loads_again(monkeypatch):
    """Configs travel as dicts (replica -> actor, SQLite): a dump must validate back unchanged."""
    import yaml

    from pathlib import Path

    for k, v in {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/x", "PAGERDUTY_ROUTING_KEY": "k" * 32,
                 "SMTP_PASSWORD": "pw"}.items():
        monkeypatch.setenv(k, v)
    root = Path(__file__).resolve().parents[2]
    cfg = parse_config(yaml.safe_load((root / "configs" / "monitor-sinks.yaml").read_text()), MonitorConfig)
    for dumped in (cfg.model_dump(), cfg.model_dump(by_alias=True)):
        again = MonitorConfig.model_validate(dumped)
        assert again == cfg
    assert again.alerting.sinks[0].webhook_url.get_secret_value() == "https://hooks.slack.com/x"
