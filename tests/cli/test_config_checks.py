"""Every entry point checks a configuration the same way, and reports everything at once.

* Rules are checked against the metric catalogue wherever a configuration comes in:
  ``check-config`` (raywatch YAML; serve config YAML with the monitor inline, in its own file,
  in ``overrides`` or in ``user_config.raywatch``), ``deploy`` (before Ray is touched), every
  ``export`` (so promtool is not the only line of defence), and YAML loaded from Python
  (``load_config``, ``load_serve_config``, ``raywatch.monitor(config=path)``).
* One pass: raywatch's fields, Serve's fields and cross-references (``route.receiver: no sink
  named 'slak'``) are reported together by check-config and deploy.
* ``configs/serve-bad.yaml`` gives the README's output; ``--allow-unset-env`` validates with
  unset secrets and names them; ``export`` names the unset variables.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from raywatch.cli import main
from raywatch.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

TYPOS = {
    "latency_p59_seconds": ("latency_p59_seconds > 0.5", "unknown metric 'latency_p59_seconds' (did you mean"),
    "drift_scroe": ("drift_scroe > 0.2", "unknown metric 'drift_scroe' (did you mean drift_score"),
    "modle": ('error_rate{modle="fraud"} > 0.05', "metric 'error_rate' has no label 'modle' (did you mean model?)"),
}


def _monitor(expr: str) -> dict:
    return {"model": "fraud", "alerting": {"rules": [{"name": "Typo", "expr": expr}], "sinks": [{"name": "log", "type": "log"}]}}


def _serve(tmp_path: Path, args_monitor=None, *, user_config=None, overrides=None, extra_app=None, name="serve.yaml") -> Path:
    app = {"name": "fraud", "route_prefix": "/fraud", "import_path": "raywatch.serve:app",
           "args": {"application": {"import_path": "deployments.fraud:build"}}}
    if args_monitor is not None:
        app["args"]["monitor"] = args_monitor
    if overrides is not None:
        app["args"]["overrides"] = overrides
    if user_config is not None:
        app["deployments"] = [{"name": "FraudModel", "user_config": user_config}]
    app.update(extra_app or {})
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"applications": [app]}, sort_keys=False))
    return path


def _entry_points(tmp_path: Path, expr: str):
    """(how, path) of each way a monitor configuration with the rule ``expr`` comes in."""
    raw = tmp_path / "monitor.yaml"
    raw.write_text(yaml.safe_dump(_monitor(expr)))
    return [
        ("raywatch YAML", raw),
        ("serve config, monitor inline", _serve(tmp_path, _monitor(expr), name="inline.yaml")),
        ("serve config, monitor file", _serve(tmp_path, "monitor.yaml", name="file.yaml")),
        ("serve config, overrides", _serve(tmp_path, {"model": "fraud"}, overrides={"FraudModel": {"alerting": _monitor(expr)["alerting"]}},
                                           name="over.yaml")),
        ("serve config, user_config.raywatch", _serve(tmp_path, {}, user_config={"raywatch": {"alerting": _monitor(expr)["alerting"]}},
                                                      name="uc.yaml")),
    ]


@pytest.mark.parametrize("typo", sorted(TYPOS))
def test_check_config_refuses_misspelled_rules_in_every_place(tmp_path, typo):
    expr, message = TYPOS[typo]
    for how, path in _entry_points(tmp_path, expr):
        res = CliRunner().invoke(main, ["check-config", str(path)])
        assert res.exit_code == 2, (how, res.output)
        assert message in res.output, (how, res.output)


@pytest.mark.parametrize("typo", sorted(TYPOS))
def test_deploy_refuses_misspelled_rules_before_touching_ray(tmp_path, typo, monkeypatch):
    import raywatch.cli.deploy as deploy_cmd

    def no_ray(*a, **k):
        raise AssertionError("deploy connected to Ray with a bad config")

    monkeypatch.setattr(deploy_cmd, "connect", no_ray)
    expr, message = TYPOS[typo]
    for how, path in _entry_points(tmp_path, expr)[1:]:
        res = CliRunner().invoke(main, ["deploy", str(path)])
        assert res.exit_code == 2, (how, res.output)
        assert message in res.output, (how, res.output)


@pytest.mark.parametrize("what", ["prometheus-rules", "grafana-dashboard", "datadog-monitors", "alertmanager-config"])
def test_every_export_refuses_misspelled_rules(tmp_path, what):
    for typo, (expr, message) in TYPOS.items():
        cfg = tmp_path / f"{typo}.yaml"
        cfg.write_text(yaml.safe_dump(_monitor(expr)))
        out = tmp_path / f"{typo}.out"
        res = CliRunner().invoke(main, ["export", what, "--config", str(cfg), "-o", str(out)])
        assert res.exit_code == 2 and message in res.output, res.output
        assert not out.exists()  # nothing for promtool (or Grafana, Datadog) to accept


@pytest.mark.parametrize("typo", sorted(TYPOS))
def test_yaml_loaded_from_python_refuses_misspelled_rules(tmp_path, typo):
    import raywatch
    from raywatch.serve.deploy import load_serve_config

    expr, message = TYPOS[typo]
    points = dict(_entry_points(tmp_path, expr))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(points["raywatch YAML"])
    with pytest.raises(ConfigError, match=re.escape(message)):
        raywatch.monitor(type("FraudModel", (), {"__call__": lambda self, x: x}), config=str(points["raywatch YAML"]))
    for how, path in points.items():
        if how.startswith("serve"):
            with pytest.raises(ConfigError, match=re.escape(message)):
                load_serve_config(path)


# ------------------------------------------------------------------------------- one pass

def _all_at_once(tmp_path: Path) -> Path:
    monitor = {
        "windows": {"length": "soon"},                                      # a raywatch field
        "alerting": {
            "rules": [{"name": "Slow", "expr": "latency_p59_seconds > 0.5"}],  # a rule off the catalogue
            "route": {"receiver": "slak"},                                   # a cross-reference
            "sinks": [{"name": "slack", "type": "log"}],
        },
    }
    return _serve(tmp_path, monitor, user_config={"raywatch": {"capture": {"sample_rate": 2}}},
                  extra_app={"route_prefix": 7})                             # a Serve field


EXPECTED_AT_ONCE = [
    "applications[0].args: monitor.windows.length: expected a duration such as '30s' or '5m', got 'soon'",
    "applications[0].args: monitor.alerting.rules[0].expr: unknown metric 'latency_p59_seconds'",
    "applications[0].args: monitor.alerting.route.receiver: no sink named 'slak' (sinks: slack)",
    "applications[0].deployments[0].user_config.raywatch.capture.sample_rate: Input should be less than or equal to 1, got 2",
    "applications[0].route_prefix: Input should be a valid string, got 7",
]


def test_check_config_reports_raywatch_serve_and_cross_reference_errors_in_one_pass(tmp_path):
    path = _all_at_once(tmp_path)
    res = CliRunner().invoke(main, ["check-config", str(path)])
    assert res.exit_code == 2
    for line in EXPECTED_AT_ONCE:
        assert f"{path}: {line}" in res.output, (line, res.output)


def test_deploy_reports_every_error_in_one_pass(tmp_path):
    path = _all_at_once(tmp_path)
    res = CliRunner().invoke(main, ["deploy", str(path)])
    assert res.exit_code == 2
    assert all(f"{path}: {line}" in res.output for line in EXPECTED_AT_ONCE), res.output


def test_a_raywatch_yaml_reports_its_cross_references_beside_its_field_errors(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({
        "drift": {"alpah": 0.1},
        "alerting": {"rules": [{"name": "E", "expr": "error_rate > 0.1"}], "route": {"receiver": "slak"},
                     "sinks": [{"name": "slack", "type": "log"}]}}))
    res = CliRunner().invoke(main, ["check-config", str(path)])
    assert res.exit_code == 2
    assert f"{path}: drift.alpah: unknown field" in res.output
    assert f"{path}: alerting.route.receiver: no sink named 'slak' (sinks: slack)" in res.output


def test_serve_union_fields_are_reported_once():
    """Serve's ``num_replicas`` is an int or "auto": a bad value is one problem, not one per member."""
    from raywatch.serve.deploy import load_serve_config

    bad = {"applications": [{"name": "a", "import_path": "deployments.fraud:build",
                             "deployments": [{"name": "FraudModel", "num_replicas": -1}]}]}
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(bad, fh)
    try:
        with pytest.raises(ConfigError) as err:
            load_serve_config(fh.name)
        assert err.value.problems == [f"{fh.name}: applications[0].deployments[0].num_replicas: Input should be greater than 0, got -1"]
    finally:
        Path(fh.name).unlink()


# ------------------------------------------------------------------------ files and secrets

def _readme_output_after(command: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"```text\n\$ " + re.escape(command) + r"\n(.*?)```", text, re.S)
    assert m, f"the README shows no output of `{command}`"
    return m.group(1)


def test_serve_bad_yaml_gives_the_readme_output(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert (CONFIGS / "serve-bad.yaml").exists()
    res = CliRunner().invoke(main, ["check-config", "configs/serve-bad.yaml"])
    assert res.exit_code == 2
    assert res.output == _readme_output_after("raywatch check-config configs/serve-bad.yaml")


def _unset_all(monkeypatch, path: Path) -> list:
    from raywatch.config import env_references

    names = sorted(set(env_references(yaml.safe_dump(yaml.safe_load(path.read_text())))))  # not the comments
    for n in names:
        monkeypatch.delenv(n, raising=False)
    return names


def test_check_config_with_unset_secrets_names_them(monkeypatch):
    src = CONFIGS / "monitor-sinks.yaml"
    names = _unset_all(monkeypatch, src)
    assert names == ["PAGERDUTY_ROUTING_KEY", "SLACK_WEBHOOK_URL", "SMTP_PASSWORD"]
    res = CliRunner().invoke(main, ["check-config", str(src)])
    assert res.exit_code == 2
    assert "environment variable SLACK_WEBHOOK_URL is not set" in res.output
    assert "--allow-unset-env" in res.output  # says how to check the rest without the secrets
    res = CliRunner().invoke(main, ["check-config", "--allow-unset-env", str(src)])
    assert res.exit_code == 0, res.output
    assert f"unset: {', '.join(names)}" in res.output


def test_check_config_allow_unset_env_for_a_serve_config_with_a_monitor_file(tmp_path, monkeypatch):
    (tmp_path / "sinks.yaml").write_text((CONFIGS / "monitor-sinks.yaml").read_text())
    names = _unset_all(monkeypatch, CONFIGS / "monitor-sinks.yaml")
    path = _serve(tmp_path, "sinks.yaml")
    assert CliRunner().invoke(main, ["check-config", str(path)]).exit_code == 2
    res = CliRunner().invoke(main, ["check-config", "--allow-unset-env", str(path)])
    assert res.exit_code == 0, res.output
    assert f"unset: {', '.join(names)}" in res.output


def test_export_names_the_unset_variables(tmp_path, monkeypatch):
    src = CONFIGS / "monitor-sinks.yaml"
    names = _unset_all(monkeypatch, src)
    res = CliRunner().invoke(main, ["export", "alertmanager-config", "--config", str(src), "-o", str(tmp_path / "am.yml")])
    assert res.exit_code == 0, res.output
    assert f"unset environment variables: {', '.join(names)}" in res.output


def test_gitignore_covers_what_the_demo_writes():
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert "/raywatch-demo/" in lines
    assert "/raywatch-out/" not in lines
