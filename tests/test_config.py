"""The schema (raywatch.config): what it accepts, what it refuses and how its errors read;
rules checked against the metric catalogue at every entry point; durations exact; secrets
written out as their references; the serve-app builder's arguments."""

import json
from pathlib import Path

import pytest
import yaml

from raywatch.config import (
    AlertingConfig,
    AlertRuleConfig,
    ConfigError,
    EnvSecret,
    MonitorConfig,
    MonitoredAppArgs,
    ShippingConfig,
    WindowConfig,
    deep_merge,
    has_masked_secrets,
    load_config,
    parse_config,
    parse_duration,
    read_yaml,
    secret_values,
    validate_args,
)

ROOT = Path(__file__).resolve().parents[1]


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
    ({"rules": [{"name": "bad name", "expr": "error_rate > 1"}]}, "alerting.rules[0].name: expected an alert name"),
    ({"rules": [{"name": "A", "expr": "error_rate > 1", "metric": "error_rate"}]},
     "give either expr or metric/matchers/op/threshold"),
    ({"rules": [{"name": "A", "metric": "error_rate", "op": ">"}]}, "missing threshold"),
    ({"rules": [{"name": "A", "expr": 'error_rate{model=~"("} > 1'}]}, "alerting.rules[0].expr: bad regular expression"),
    ({"rules": [{"name": "A", "expr": "error_rate > 1", "severity": "page"}]}, "alerting.rules[0].severity"),
    ({"rules": [{"name": "A", "expr": "error_rate > 1", "labels": {"severity": "x"}}]}, "set by the rule itself"),
    ({"rules": [{"name": "A", "expr": "error_rate > 1", "keep_firing_for": "-1s"}]}, "alerting.rules[0].keep_firing_for"),
    ({"rules": [{"name": "A", "expr": "error_rate > 1", "annotations": {"s": "{{ $value | shout }}"}}]},
     "unknown template function"),
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
    for k, v in {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/x", "PAGERDUTY_ROUTING_KEY": "k" * 32,
                 "SMTP_PASSWORD": "pw"}.items():
        monkeypatch.setenv(k, v)
    cfg = parse_config(yaml.safe_load((ROOT / "configs" / "monitor-sinks.yaml").read_text()), MonitorConfig)
    for dumped in (cfg.model_dump(), cfg.model_dump(by_alias=True)):
        again = MonitorConfig.model_validate(dumped)
        assert again == cfg
    assert again.alerting.sinks[0].webhook_url.get_secret_value() == "https://hooks.slack.com/x"


# --------------------------------------------------------------------------- the metric catalogue

TYPOS = [
    ("latency_p59_seconds > 1", "expr",
     "unknown metric 'latency_p59_seconds' (did you mean latency_p99_seconds, latency_p95_seconds, latency_p50_seconds?)"),
    ("drift_scroe > 0.2", "expr", "unknown metric 'drift_scroe' (did you mean drift_score?)"),
    ('error_rate{modle="fraud"} > 0.1', "expr", "metric 'error_rate' has no label 'modle' (did you mean model?)"),
]


@pytest.mark.parametrize("expr,field,expected", TYPOS)
def test_a_rule_on_an_unknown_metric_or_label_is_refused_naming_file_field_and_closest_names(expr, field, expected,
                                                                                            tmp_path):
    data = {"alerting": {"rules": [{"name": "Ok", "expr": "error_rate > 0.1"}, {"name": "Typo", "expr": expr}]}}
    line = f"alerting.rules[1].{field}: {expected}"
    # YAML loaded from a file (check-config, deploy, export and Python all load through here)
    f = tmp_path / "monitor.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert f"{f}: {line}" in str(exc.value)
    # a mapping from Python, and the stored form
    with pytest.raises(ConfigError) as exc:
        parse_config(data, source="m.yaml")
    assert f"m.yaml: {line}" in str(exc.value)
    with pytest.raises(ConfigError):
        MonitorConfig.from_data(data)
    # an override merged over a good config (user_config.raywatch)
    with pytest.raises(ConfigError) as exc:
        MonitorConfig().merged(data, source="user_config")
    assert f"user_config: {line}" in str(exc.value)
    # the serve-app builder's arguments
    with pytest.raises(ConfigError) as exc:
        validate_args({"application": {"import_path": "deployments.fraud:build"}, "monitor": data})
    assert f"raywatch.serve:app args: monitor.{line}" in str(exc.value)
    # the models themselves
    with pytest.raises(ValueError, match=expected.split(" (")[0]):
        AlertRuleConfig(name="Typo", expr=expr)


def test_structured_rules_are_checked_field_by_field():
    with pytest.raises(ConfigError) as exc:
        parse_config({"alerting": {"rules": [
            {"name": "A", "metric": "latncy_p95_seconds", "op": ">", "threshold": 1},
            {"name": "B", "metric": "drift_score", "matchers": {"featur": "age"}, "op": ">", "threshold": 1},
            {"name": "C", "metric": 'error_rate{model="x"}', "op": ">", "threshold": 1}]}}, source="m.yaml")
    text = str(exc.value)
    assert "m.yaml: alerting.rules[0].metric: unknown metric 'latncy_p95_seconds' (did you mean latency_p95_seconds" in text
    assert ("m.yaml: alerting.rules[1].matchers: metric 'drift_score' has no label 'featur' (did you mean feature?); "
            "its labels: app, deployment, model, version, feature, method") in text
    assert "m.yaml: alerting.rules[2].metric: expected a metric name (matchers go under 'matchers')" in text


def test_only_metrics_rules_can_see_are_accepted():
    """Exposition-only series (the actor's own counters) are not what rules evaluate."""
    with pytest.raises(ValueError, match="unknown metric 'actor_batches_total'"):
        AlertRuleConfig(name="A", expr="actor_batches_total > 1")
    AlertRuleConfig(name="A", expr='gpu_utilization{gpu="0", model=~"f.*"} > 90')


def test_the_example_configs_name_only_catalogue_series(monkeypatch):
    for k in ("SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY", "SMTP_PASSWORD"):
        monkeypatch.setenv(k, "x")
    for name in ("monitor.yaml", "monitor-sinks.yaml"):
        assert load_config(ROOT / "configs" / name).alerting.rules


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize("text,seconds", [
    ("250ms", 0.25), ("1001ms", 1.001), ("1ms", 0.001), ("90061s", 90061.0), ("1d", 86400.0), ("1.5m", 90.0),
    (3, 3.0), (0.5, 0.5),
])
def test_durations_parse_to_the_nearest_float(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-1s", True, "5 minutes", "1w"])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize("model,field", [(ShippingConfig, "flush_interval"), (WindowConfig, "length"),
                                         (WindowConfig, "evaluation_interval")])
def test_intervals_must_be_positive(model, field):
    with pytest.raises(ConfigError, match=f"{field}: expected a positive duration"):
        parse_config({field: "0s"}, model, source="m.yaml")


# --------------------------------------------------------------------------- secrets and plain data


def test_to_data_writes_references_never_resolved_secrets(monkeypatch):
    monkeypatch.setenv("RW_HOOK", "https://hooks.example/T0/SECRET-CANARY")
    cfg = parse_config({"model": "m", "alerting": {
        "rules": [{"name": "E", "expr": "error_rate > 0.1", "for": "90s"}],
        "sinks": [{"name": "s", "type": "slack", "webhook_url": "${RW_HOOK}"},
                  {"name": "p", "type": "pagerduty", "routing_key": "inline-key"}]}})
    data = cfg.to_data()
    text = json.dumps(data)
    assert "SECRET-CANARY" not in text and "inline-key" not in text
    assert data["alerting"]["sinks"][0]["webhook_url"] == "${RW_HOOK}"
    assert "metric" not in data["alerting"]["rules"][0]  # derived from expr
    again = MonitorConfig.from_data(json.loads(text))
    assert again.alerting.sinks[0].webhook_url.get_secret_value().endswith("SECRET-CANARY")
    assert again.alerting.rules == cfg.alerting.rules
    assert has_masked_secrets(again) and not has_masked_secrets(cfg)  # the inline key was masked
    assert sorted(secret_values(cfg)) == ["https://hooks.example/T0/SECRET-CANARY", "inline-key"]


def test_unset_variables_are_collected_on_request(monkeypatch):
    monkeypatch.delenv("RW_UNSET_A", raising=False)
    data = {"alerting": {"sinks": [{"name": "s", "type": "slack", "webhook_url": "${RW_UNSET_A}"}]}}
    with pytest.raises(ConfigError, match="alerting.sinks\\[0\\].webhook_url: environment variable RW_UNSET_A is not set"):
        parse_config(data)
    unset = set()
    cfg = parse_config(data, unset_env=unset)
    assert unset == {"RW_UNSET_A"} and isinstance(cfg.alerting.sinks[0].webhook_url, EnvSecret)


def test_merged_overrides_and_keeps_references(monkeypatch):
    monkeypatch.setenv("RW_HOOK", "https://hooks.example/x")
    cfg = parse_config({"capture": {"sample_rate": 1.0, "methods": ["predict"]},
                        "alerting": {"sinks": [{"name": "s", "type": "slack", "webhook_url": "${RW_HOOK}"}]}})
    out = cfg.merged({"capture": {"sample_rate": 0.25}})
    assert (out.capture.sample_rate, out.capture.methods) == (0.25, ["predict"])
    assert out.alerting.sinks[0].webhook_url.reference == "${RW_HOOK}"
    assert cfg.merged(None) is cfg
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_yaml_errors_name_the_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("alerting:\n  rules: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line \d+, column \d+\)"):
        read_yaml(f)
    with pytest.raises(ConfigError, match="missing.yaml: cannot read the file"):
        load_config(tmp_path / "missing.yaml")
    f.write_text("model: m\n")
    with pytest.raises(ConfigError, match="raywatch: required section is missing"):
        load_config(f, key="raywatch")


# --------------------------------------------------------------------------- the serve-app builder's arguments


def test_app_args_accept_an_inline_monitor_and_overrides():
    args = validate_args({"application": {"import_path": "deployments.fraud:build", "args": {"seed": 0}},
                          "monitor": {"model": "fraud", "capture": {"sample_rate": 0.5}},
                          "overrides": {"Scorer": {"capture": {"sample_rate": 0.1}}}})
    assert args.application.args == {"seed": 0}
    assert args.monitor_config().capture.sample_rate == 0.5
    scorer = args.monitor_config("Scorer")
    assert (scorer.model, scorer.capture.sample_rate) == ("fraud", 0.1)
    assert MonitoredAppArgs.model_validate(args) is args


def test_app_args_read_a_monitor_file(tmp_path):
    f = tmp_path / "monitor.yaml"
    f.write_text("model: fraud\nshipping: {flush_interval: 2s}\n")
    args = validate_args({"application": {"import_path": "deployments.fraud:build"}, "monitor": str(f),
                          "overrides": {"B": {"model": "b"}}})
    assert args.raw_monitor() == {"model": "fraud", "shipping": {"flush_interval": "2s"}}
    assert args.monitor_config("B").model == "b" and args.monitor_config("B").shipping.flush_interval == 2.0


@pytest.mark.parametrize("args,expected", [
    ({"application": {"import_path": "nodots"}}, "application.import_path: expected an import path"),
    ({"application": {"import_path": "x:y"}, "monitr": {}}, "monitr: unknown field"),
    ({"application": {"import_path": "x:y"}, "overrides": {"B": {"capture": {"sample_rate": 2}}}},
     "raywatch.serve:app args: overrides.B.capture.sample_rate: Input should be less than or equal to 1"),
    ("not a mapping", "expected a mapping with 'application' and 'monitor'"),
])
def test_app_args_errors_name_the_field(args, expected):
    with pytest.raises(ConfigError) as exc:
        MonitoredAppArgs.model_validate(args)
    assert expected in str(exc.value)


# --------------------------------------------------------------------------- secrets never echoed by errors

# Every secret field of every sink, with each kind of wrong value a YAML file or Python
# caller can give it. ``canary`` is what must never appear in an error (for ${UNSET}: the rest
# of the value; the variable's name is not secret and is named).
SECRET_FIELDS = [
    ({"type": "slack"}, "webhook_url"),
    ({"type": "pagerduty"}, "routing_key"),
    ({"type": "webhook"}, "url"),
    ({"type": "webhook", "url": "https://hooks.example/x"}, "headers.Authorization"),
    ({"type": "webhook", "url": "https://hooks.example/x"}, "headers"),
    ({"type": "datadog"}, "api_key"),
    ({"type": "datadog", "api_key": "k"}, "app_key"),
    ({"type": "alertmanager", "url": "http://127.0.0.1:9093"}, "bearer_token"),
    ({"type": "email", "host": "smtp.example", "from": "a@example.com", "to": ["b@example.com"]}, "password"),
]
WRONG_VALUES = [
    ("number", 424242424242, "424242424242"),
    ("float", 3.14159265358, "3.14159265358"),
    ("list", ["https://hooks.example/T0/CANARYLIST"], "CANARYLIST"),
    ("dict", {"token": "CANARYDICT"}, "CANARYDICT"),
    ("wrong-string", "Bearer CANARYSTRING-9f8e7d", "CANARYSTRING"),   # where a string is the wrong type
    ("bad-reference", "https://hooks.example/${not a var}/CANARYBADREF", "CANARYBADREF"),
    ("unset", "https://hooks.example/${RW_TEST_UNSET_CANARY}/CANARYUNSET", "CANARYUNSET"),
]
SECRET_CASES = [
    (base, field, kind, value, canary)
    for base, field in SECRET_FIELDS for kind, value, canary in WRONG_VALUES
    # a string is a valid secret, so "wrong string" is for headers, which want a mapping of them
    # (and a mapping of strings is valid headers; any other string given to headers is the same case)
    if (kind in ("number", "float", "list", "wrong-string") if field == "headers" else kind != "wrong-string")
]


def _sink_with(base, field, value):
    sink = dict(base, name="s")
    if "." in field:
        outer, inner = field.split(".")
        sink[outer] = {inner: value}
    else:
        sink[field] = value
    return sink


def _error_texts(sink, tmp_path):
    """The error of every entry point that validates a sink (YAML file, mapping, Python
    model, serve-app args, overrides merged at run time)."""
    from pydantic import ValidationError

    from raywatch.config import SINK_TYPES

    texts = []
    doc = {"alerting": {"sinks": [sink]}}

    def grab(fn):
        try:
            fn()
        except (ConfigError, ValidationError) as exc:
            texts.append(str(exc))
            return
        texts.append("")  # accepted: the test says so below

    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump(doc))
    grab(lambda: load_config(f))
    grab(lambda: parse_config(doc, MonitorConfig, source="m.yaml"))
    grab(lambda: AlertingConfig.model_validate(doc["alerting"]))
    grab(lambda: MonitorConfig.model_validate(doc))
    grab(lambda: SINK_TYPES[sink["type"]].model_validate(sink))
    grab(lambda: SINK_TYPES[sink["type"]](**sink))
    grab(lambda: validate_args({"application": {"import_path": "x:y"}, "monitor": doc}))
    grab(lambda: validate_args({"application": {"import_path": "x:y"}, "overrides": {"D": doc}}))
    grab(lambda: MonitorConfig().merged(doc, source="user_config"))
    return texts


@pytest.mark.parametrize("base,field,kind,value,canary", SECRET_CASES,
                         ids=[f"{b['type']}.{f}-{k}" for b, f, k, _, _ in SECRET_CASES])
def test_config_errors_never_echo_a_secret(base, field, kind, value, canary, tmp_path, monkeypatch):
    monkeypatch.delenv("RW_TEST_UNSET_CANARY", raising=False)
    texts = _error_texts(_sink_with(base, field, value), tmp_path)
    for text in texts:
        assert text, "a wrong secret value was accepted"
        assert canary not in text, text
        assert field.split(".")[0] in text, text    # the error still names the field
    if kind == "unset":
        assert all("RW_TEST_UNSET_CANARY" in t for t in texts)


def test_a_config_pickled_before_a_field_existed_loads_with_its_default():
    """Schema-1 state files hold pickled configs; fields added since (alerting.watchdog, ...)
    take their defaults instead of breaking every walk over the model."""
    import pickle

    cfg = parse_config({"alerting": {"rules": [{"name": "E", "expr": "error_rate > 0.1"}],
                                     "sinks": [{"name": "s", "type": "slack", "webhook_url": "https://hooks.example/T0"}]}})
    old = cfg.alerting.__getstate__()
    del old["__dict__"]["watchdog"]            # as the release before the Watchdog pickled it
    older = AlertingConfig.__new__(AlertingConfig)
    older.__setstate__(old)
    assert older.watchdog.enabled and secret_values(older) == ["https://hooks.example/T0"]
    again = pickle.loads(pickle.dumps(cfg.model_copy(update={"alerting": older})))
    assert again.to_data()["alerting"]["watchdog"]["enabled"] is True
