"""The ``raywatch`` command without a Ray cluster: help, profile build/show, check-config,
export, replay-dead-letters."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import click
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from raywatch.cli import main
from raywatch.stats.profile import Profile

COMMANDS = [
    [], ["demo"], ["status"], ["report"], ["profile"], ["profile", "build"], ["profile", "show"],
    ["export"], ["check-config"], ["deploy"], ["replay-dead-letters"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "raywatch")
def test_help_on_every_command(cmd):
    res = CliRunner().invoke(main, cmd + ["--help"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Usage: ") and len(res.output.splitlines()) > 4


def test_help_lists_every_command():
    out = CliRunner().invoke(main, ["--help"]).output
    for name in ("demo", "status", "report", "profile", "export", "check-config", "deploy", "replay-dead-letters"):
        assert f"  {name} " in out


def _fraud_csv(path: Path, n: int = 400) -> None:
    from deployments.fraud_data import generate_transactions

    cols, _ = generate_transactions(n, seed=3)
    names = list(cols)
    with path.open("w") as fh:
        fh.write(",".join(names) + "\n")
        for i in range(n):
            vals = []
            for k in names:
                v = cols[k][i]
                vals.append(("true" if v else "false") if k == "card_present" else str(v))
            if i == 5:
                vals[names.index("amount")] = ""  # a missing value
            fh.write(",".join(vals) + "\n")


def test_profile_build_from_csv_infers_kinds_and_reads_back(tmp_path):
    csv = tmp_path / "tx.csv"
    _fraud_csv(csv)
    res = CliRunner().invoke(main, ["profile", "build", str(csv), "--kind", "hour=categorical", "--bins", "20"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "tx.profile"
    assert f"profile written to {out}: 400 rows, 7 columns" in res.output
    prof = Profile.load(out)
    assert prof.kinds == {
        "amount": "numerical", "hour": "categorical", "merchant_category": "categorical", "distance_km": "numerical",
        "card_present": "boolean", "tx_count_24h": "numerical", "account_age_days": "numerical",
    }
    assert prof.reference.rows == 400 and prof.reference.column("amount").missing == 1
    show = CliRunner().invoke(main, ["profile", "show", str(out)])
    assert show.exit_code == 0 and "merchant_category" in show.output and "categorical" in show.output


def test_profile_build_from_npz_columns_and_matrix(tmp_path):
    rng = np.random.default_rng(0)
    cols = tmp_path / "cols.npz"
    np.savez(cols, age=rng.normal(40, 10, 300), plan=np.array(["free", "pro"] * 150))
    res = CliRunner().invoke(main, ["profile", "build", str(cols), "-o", str(tmp_path / "c.profile"), "--columns", "age"])
    assert res.exit_code == 0, res.output
    assert Profile.load(tmp_path / "c.profile").columns == ["age"]
    mat = tmp_path / "mat.npz"
    np.savez(mat, x=rng.normal(size=(200, 3)))
    res = CliRunner().invoke(main, ["profile", "build", str(mat)])
    assert res.exit_code == 0, res.output
    assert Profile.load(tmp_path / "mat.profile").columns == ["x_0", "x_1", "x_2"]


def test_profile_build_from_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0] * 50, "b": ["x", "y", "z"] * 50}), path)
    res = CliRunner().invoke(main, ["profile", "build", str(path)])
    assert res.exit_code == 0, res.output
    assert Profile.load(tmp_path / "t.profile").kinds == {"a": "numerical", "b": "categorical"}


def test_profile_build_errors_are_explained(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    res = CliRunner().invoke(main, ["profile", "build", str(bad)])
    assert res.exit_code == 1 and "line 3: 1 fields, header has 2" in res.output
    res = CliRunner().invoke(main, ["profile", "build", str(bad), "--kind", "a"])
    assert res.exit_code == 2 and "expected COLUMN=KIND" in res.output
    other = tmp_path / "x.json"
    other.write_text("{}")
    res = CliRunner().invoke(main, ["profile", "build", str(other)])
    assert res.exit_code == 1 and "unknown format 'json'" in res.output


def test_check_config_names_file_field_and_expectation(tmp_path):
    good = tmp_path / "monitor.yaml"
    good.write_text(yaml.safe_dump({"model": "fraud", "alerting": {"rules": [
        {"name": "Drift", "metric": "drift_detected", "op": "==", "threshold": 1}], "sinks": [{"name": "log", "type": "log"}]}}))
    res = CliRunner().invoke(main, ["check-config", str(good)])
    assert res.exit_code == 0, res.output
    assert "1 rule(s), 1 sink(s)" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("windows:\n  length: soon\ndrift:\n  alpah: 0.1\n")
    res = CliRunner().invoke(main, ["check-config", str(good), str(bad)])
    assert res.exit_code == 2
    assert f"{bad}: windows.length: expected a duration such as '30s' or '5m', got 'soon'" in res.output
    assert f"{bad}: drift.alpah: unknown field" in res.output


def _serve_config(tmp_path: Path, monitor, user_config=None) -> Path:
    app = {
        "name": "fraud", "route_prefix": "/fraud", "import_path": "raywatch.serve:app",
        "args": {"application": {"import_path": "deployments.fraud:build"}, "monitor": monitor},
    }
    if user_config is not None:
        app["deployments"] = [{"name": "FraudModel", "user_config": user_config}]
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump({"applications": [app]}))
    return path


def test_check_config_serve_yaml(tmp_path):
    (tmp_path / "mon.yaml").write_text("model: fraud\n")
    ok = _serve_config(tmp_path, "mon.yaml", {"raywatch": {"capture": {"sample_rate": 0.5}}, "threshold": 0.4})
    res = CliRunner().invoke(main, ["check-config", str(ok)])
    assert res.exit_code == 0, res.output
    assert "deployments.fraud:build monitored by raywatch" in res.output

    inline_bad = _serve_config(tmp_path, {"windows": {"length": -1}})
    res = CliRunner().invoke(main, ["check-config", str(inline_bad)])
    assert res.exit_code == 2
    assert f"{inline_bad}: applications[0].args: monitor.windows.length: expected a non-negative duration, got -1" in res.output

    uc_bad = _serve_config(tmp_path, {}, {"raywatch": {"capture": {"sample_rate": 2}}})
    res = CliRunner().invoke(main, ["check-config", str(uc_bad)])
    assert res.exit_code == 2
    assert f"{uc_bad}: applications[0].deployments[0].user_config.raywatch.capture.sample_rate: Input should be less than or equal to 1, got 2" in res.output

    (tmp_path / "broken.yaml").write_text("alerting:\n  sinks:\n    - {name: s, type: carrier-pigeon}\n")
    file_bad = _serve_config(tmp_path, "broken.yaml")
    res = CliRunner().invoke(main, ["check-config", str(file_bad)])
    assert res.exit_code == 2
    assert f"{tmp_path / 'broken.yaml'}: alerting.sinks[0]: expected 'type' to be one of" in res.output


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_repository_configs_are_valid(monkeypatch):
    import re

    paths = sorted(str(p) for p in CONFIGS.glob("serve-*.yaml") if p.name != "serve-bad.yaml")  # the README's bad example
    paths += sorted(str(p) for p in CONFIGS.glob("monitor*.yaml"))
    assert len(paths) >= 5
    for p in CONFIGS.glob("monitor*.yaml"):
        for name in set(re.findall(r"\$\{(\w+)\}", p.read_text())):
            monkeypatch.setenv(name, f"https://example.invalid/{name}")
    res = CliRunner().invoke(main, ["check-config", *paths])
    assert res.exit_code == 0, res.output
    assert res.output.count("monitored by raywatch") == 4  # serve-fraud, serve-demo, serve-approval, serve-remediation-demo


def test_monitoring_is_a_yaml_only_change():
    """serve-fraud.yaml monitors exactly the application serve-fraud-plain.yaml runs."""
    plain = yaml.safe_load((CONFIGS / "serve-fraud-plain.yaml").read_text())["applications"][0]
    monitored = yaml.safe_load((CONFIGS / "serve-fraud.yaml").read_text())["applications"][0]
    assert monitored["import_path"] == "raywatch.serve:app"
    assert monitored["args"]["application"] == {"import_path": plain["import_path"], "args": plain["args"]}
    assert monitored["name"] == plain["name"] and monitored["route_prefix"] == plain["route_prefix"]


@pytest.mark.parametrize("what", ["prometheus-rules", "grafana-dashboard", "datadog-monitors", "alertmanager-config"])
def test_export_writes_each_format_without_secrets(tmp_path, what, monkeypatch):
    import re

    src = CONFIGS / "monitor-sinks.yaml"  # every sink type, secrets as ${ENV_VAR}, none set here
    names = set(re.findall(r"\$\{(\w+)\}", src.read_text()))
    assert names
    for name in names:
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["export", what, "--config", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "unset-" not in text
    committed = {"prometheus-rules": "prometheus-rules.yml", "grafana-dashboard": "grafana-dashboard.json",
                 "datadog-monitors": "datadog-monitors.json", "alertmanager-config": "alertmanager.yml"}[what]
    assert text == (CONFIGS / committed).read_text()  # the files in configs/ are what the CLI makes
    doc = json.loads(text) if what in ("grafana-dashboard", "datadog-monitors") else yaml.safe_load(text)
    rules = yaml.safe_load(src.read_text()).get("alerting", {}).get("rules", [])
    if what == "prometheus-rules":
        # the config's rules, and the default rule a multi-replica deployment gets (issue 12)
        assert {r["alert"] for r in doc["groups"][0]["rules"]} == {r["name"] for r in rules} | {"ReplicaOutlier"}
    elif what == "datadog-monitors":
        assert len(doc) >= 1 and all(m["type"] == "metric alert" for m in doc)
    elif what == "grafana-dashboard":
        assert doc["panels"]
    else:
        assert doc["route"]["receiver"]


def test_export_with_unset_secrets_leaves_the_environment_alone(tmp_path, monkeypatch):
    import os
    import re

    src = CONFIGS / "monitor-sinks.yaml"
    names = set(re.findall(r"\$\{(\w+)\}", src.read_text()))
    for name in names:
        monkeypatch.delenv(name, raising=False)
    res = CliRunner().invoke(main, ["export", "alertmanager-config", "--config", str(src), "-o", str(tmp_path / "am.yml")])
    assert res.exit_code == 0, res.output
    assert not names & set(os.environ)


@pytest.mark.integration
def test_exported_rules_and_scrape_config_pass_promtool(tmp_path, require_binary):
    import shutil
    import subprocess

    promtool = require_binary("promtool")
    rules = tmp_path / "prometheus-rules.yml"
    res = CliRunner().invoke(main, ["export", "prometheus-rules", "--config", str(CONFIGS / "monitor-sinks.yaml"), "-o", str(rules)])
    assert res.exit_code == 0, res.output
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    shutil.copy(CONFIGS / "prometheus.yml", tmp_path / "prometheus.yml")  # it loads prometheus-rules.yml beside it
    check = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


class _Receiver(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_replay_dead_letters_sends_and_empties_the_file(tmp_path):
    from raywatch.alerts.deadletter import DeadLetterFile
    from raywatch.sinks.notification import Notification

    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        cfg = tmp_path / "monitor.yaml"
        cfg.write_text(yaml.safe_dump({"alerting": {"sinks": [{"name": "hook", "type": "webhook", "url": url}]}}))
        alert = {"status": "firing", "labels": {"alertname": "FeatureDrift", "severity": "warning", "feature": "amount"},
                 "annotations": {"summary": "amount drifted"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                 "fingerprint": "abc"}
        n = Notification.build("hook", "{}:{alertname=\"FeatureDrift\"}", {"alertname": "FeatureDrift"}, [alert])
        dl = tmp_path / "dead.jsonl"
        DeadLetterFile(dl).write("hook", "webhook", n, "HTTP 503", attempts=6, status=503)
        DeadLetterFile(dl).write("gone", "webhook", n, "HTTP 503", attempts=6, status=503)
        res = CliRunner().invoke(main, ["replay-dead-letters", str(dl), "--config", str(cfg)])
        assert res.exit_code == 0, res.output
        assert f"sent 1, best effort 0, failed again 0, skipped 1, superseded 0; 1 left in {dl}" in res.output
        assert _Receiver.bodies and _Receiver.bodies[-1]["alerts"][0]["labels"]["feature"] == "amount"
        assert [json.loads(x)["sink"] for x in dl.read_text().splitlines()] == ["gone"]
    finally:
        server.shutdown()


def test_deploy_refuses_a_bad_serve_config_before_touching_ray(tmp_path):
    bad = _serve_config(tmp_path, {"capture": {"sample_rate": "often"}})
    res = CliRunner().invoke(main, ["deploy", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}: applications[0].args: monitor.capture.sample_rate: Input should be a valid number" in res.output


def test_report_from_a_missing_sqlite_file_says_where_the_file_is(tmp_path):
    missing = tmp_path / "nope.sqlite"
    res = CliRunner().invoke(main, ["report", "--sqlite", str(missing), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 1
    assert f"{missing}: no such file (the stats actor's SQLite file is actor.sqlite_path in the raywatch YAML)" in res.output
    assert not (tmp_path / "r.html").exists()


def test_status_lines_summarize_the_query_api():
    from raywatch.cli.status import status_lines

    st = {"models": {"fraud/FraudModel": {
        "labels": {"app": "fraud", "deployment": "FraudModel", "model": "fraud", "version": "v1"},
        "profile": True, "totals": {"requests": 1234},
        "rolling": {"throughput_rps": 40.2, "error_rate": 0.0, "latency_p50_seconds": 0.0035, "latency_p95_seconds": 0.012,
                    "latency_p99_seconds": 0.03},
        "drift": {"columns": {"amount": {"drifted": True, "p_value": 1e-31, "p_value_adjusted": 1e-30},
                              "hour": {"drifted": False, "p_value": 0.2, "p_value_adjusted": 0.4}}},
        "performance": {"accuracy": 0.98, "rows": 500}, "resources": {"cpu_percent": 12.0, "rss_bytes": 2.5e8},
        "replicas": {"r1": {}, "r2": {}},
        "alerts": [{"state": "firing", "labels": {"alertname": "FeatureDrift", "severity": "warning", "feature": "amount"},
                    "annotations": {"summary": "amount drifted"}}],
    }}}
    text = click.unstyle("\n".join(status_lines(st)))
    assert "requests 1,234" in text and "p95 12 ms" in text and "replicas 2" in text
    assert "amount DRIFT (p_adj=1e-30)" in text and "hour ok (p_adj=0.4)" in text  # the p-value that decides
    assert "accuracy 0.98" in text and "rows 500" in text
    assert "FIRING FeatureDrift [warning] feature=amount — amount drifted" in text
    assert status_lines({"models": {}}) == ["no model has reported to the stats actor yet"]
