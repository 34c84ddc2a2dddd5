"""The Ray-free remediation core: the state machine, trigger and guardrails, the validation
gate, the audit trail as data, the compliance record and its HTML, the audit command on a
SQLite file, the configuration's errors, and the serve-config patch a promotion writes."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import yaml

from raywatch.aggregate.audit import AUDIT_VERSION, AuditEvent
from raywatch.aggregate.store import open_audit_log
from raywatch.config import ConfigError, parse_config
from raywatch.config.remediate import GuardrailsConfig, RemediationSettings, TriggerConfig
from raywatch.remediate import gate
from raywatch.remediate.policy import admit, fold, triggers
from raywatch.remediate.rollout import FINAL, TRANSITIONS, advance


def ev(kind, ts, d="d1", model="a/m", **kw):
    state = kw.pop("state", "")
    return AuditEvent.new(model, d, kind, ts=ts, state=state, **kw)


# --------------------------------------------------------------------------- state machine


def test_every_path_of_the_state_machine_ends_in_a_final_state():
    paths = {
        "promoted": ["retrain_started", "candidate", "validation_passed", "shadow_started", "canary_started", "promoted"],
        "rolled_back": ["approval_required", "approved", "retrain_started", "candidate", "shadow_started", "rolled_back"],
        "not_deployed": ["retrain_started", "candidate", "validation_failed"],
        "dry_run": ["retrain_started", "candidate", "validation_passed", "dry_run_done"],
        "failed": ["retrain_started", "retrain_failed"],
        "rejected": ["approval_required", "rejected"],
        "expired": ["approval_required", "approval_expired"],
        "skipped": ["skipped"],
    }
    for final, steps in paths.items():
        s = "triggered"
        for k in steps:
            s = advance(s, k)
        assert s == final, (final, steps)
    assert {v for v in TRANSITIONS.values()} - {"awaiting_approval", "approved", "retraining", "validating", "shadow",
                                                "canary"} <= FINAL


def test_steps_that_cannot_happen_are_refused_and_failure_reaches_any_open_state():
    with pytest.raises(ValueError, match="no step 'promoted' from state 'retraining'"):
        advance("retraining", "promoted")
    with pytest.raises(ValueError, match="final"):
        advance("dry_run", "failed")
    assert all(advance(s, "failed") == "failed" for s in ("triggered", "retraining", "validating", "shadow", "canary"))
    assert advance("canary", "canary_figures") == "canary"  # evidence only


# --------------------------------------------------------------------------- policy


def test_triggers_match_names_globs_and_labels():
    cfg = TriggerConfig(alerts=["FeatureDrift", "*Performance*"], matchers=['model="fraud"', 'severity!="info"'])
    assert triggers(cfg, {"alertname": "FeatureDrift", "model": "fraud", "severity": "warning"})
    assert triggers(cfg, {"alertname": "EstimatedPerformanceDrop", "model": "fraud"})
    assert not triggers(cfg, {"alertname": "FeatureDrift", "model": "loans"})
    assert not triggers(cfg, {"alertname": "FeatureDrift", "model": "fraud", "severity": "info"})
    assert not triggers(cfg, {"alertname": "HighLatency", "model": "fraud"})


def test_guardrails_one_at_a_time_min_interval_and_max_per_day():
    g = GuardrailsConfig(min_interval="1h", max_per_day=2)
    open_ = [ev("triggered", 0.0, state="triggered"), ev("retrain_started", 1.0, state="retraining")]
    assert admit(g, fold(open_).values(), 2.0).reason == "in_progress"
    done = []
    for i, t in enumerate((0.0, 4000.0)):
        d = f"d{i}"
        done += [ev("triggered", t, d, state="triggered"), ev("retrain_started", t + 1, d, state="retraining"),
                 ev("retrain_failed", t + 2, d, state="failed")]
    assert admit(g, fold(done).values(), 4000.0 + 1800).reason == "min_interval"
    verdict = admit(g, fold(done).values(), 4000.0 + 3700)
    assert verdict.reason == "max_per_day" and "2 retrains in the last 24 hours" in verdict.detail
    assert admit(g, fold(done).values(), 86400 + 4002.0).allowed
    skipped_only = [ev("triggered", 0.0, state="triggered"), ev("skipped", 0.0, state="skipped")]
    assert admit(g, fold(skipped_only).values(), 1.0).allowed  # a skipped trigger is no retrain


# --------------------------------------------------------------------------- gate


def test_the_gate_orients_lower_is_better_metrics_and_needs_an_interval_above_zero():
    rng = np.random.default_rng(3)
    y = rng.normal(size=3000)
    champion = y + rng.normal(0, 1.0, 3000)
    candidate = y + rng.normal(0, 0.5, 3000)
    r = gate.compare("mae", y, champion, candidate, min_improvement=0.1)
    assert r.passed and r.improvement > 0.3 and r.candidate < r.champion
    noisy = gate.compare("mae", y[:40], champion[:40], champion[:40] + rng.normal(0, 0.05, 40), min_improvement=0.0)
    assert not noisy.passed


def test_the_gate_on_scores_and_on_a_slice_with_one_class():
    y = np.array([0, 0, 1, 1] * 100)
    good = np.where(y == 1, 0.8, 0.2) + np.random.default_rng(0).normal(0, 0.05, 400)
    bad = np.random.default_rng(1).random(400)
    r = gate.compare("roc_auc", y, bad, good)
    assert r.passed and r.candidate > 0.99
    one = gate.compare("roc_auc", np.ones(50), bad[:50], good[:50])
    assert not one.passed and "undefined" in one.reason


def test_residual_drift_refuses_a_candidate_trained_on_other_data():
    from raywatch.stats.profile import Profile

    rng = np.random.default_rng(5)
    prof = Profile.fit({"x1": rng.normal(size=4000), "x2": rng.normal(size=4000)}, seed=0)
    now = {"x1": rng.normal(size=500), "x2": rng.normal(1.5, 1, 500), "other": rng.normal(size=500)}
    c = gate.residual_drift(prof, now, max_share=0.25)
    assert not c.passed and c.drifted == ["x2"] and c.tested == ["x1", "x2"]


# --------------------------------------------------------------------------- audit trail


def test_the_audit_trail_is_durable_versioned_data(tmp_path):
    path = str(tmp_path / "audit" / "trail.sqlite")
    log = open_audit_log(path)
    e = ev("validation_passed", 5.0, evidence={"gate": {"low": float("nan"), "x": np.float64(0.5)}, "rows": np.int64(3)})
    log.append([ev("triggered", 1.0), e])
    log.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = open_audit_log(path)
    got = again.events("a/m")
    assert [x.kind for x in got] == ["triggered", "validation_passed"]
    assert got[1].evidence == {"gate": {"low": None, "x": 0.5}, "rows": 3}
    assert again.events("a/m", since=2.0) == [got[1]] and again.events("other") == []
    data = got[0].to_data()
    with pytest.raises(ValueError, match="version 2: this raywatch reads version 1"):
        AuditEvent.from_data({**data, "version": AUDIT_VERSION + 1})
    with pytest.raises(ValueError, match="not a raywatch.audit record"):
        AuditEvent.from_data({**data, "format": "x"})
    with pytest.raises(ValueError, match="keep the figures, not the data"):
        again.append([ev("note", 1.0, evidence={"rows": list(range(100_000))})])
    # a damaged record costs only itself
    again.store._conn.execute("UPDATE audit SET data = '{\"format\": 1}' WHERE kind = 'triggered'")
    assert [x.kind for x in again.events()] == ["validation_passed"]


def test_the_compliance_record_and_its_page(tmp_path):
    from click.testing import CliRunner

    from raywatch.cli.audit import audit

    path = str(tmp_path / "trail.sqlite")
    log = open_audit_log(path)
    import time

    t = time.time()
    log.append([ev("triggered", t - 60, model="shop/fraud", state="triggered",
                   evidence={"alert": {"labels": {"alertname": "FeatureDrift", "severity": "warning"}}}),
                ev("approval_required", t - 50, model="shop/fraud", state="awaiting_approval"),
                ev("approved", t - 40, model="shop/fraud", state="approved", by="alice", evidence={"comment": "<ok>"}),
                ev("retrain_started", t - 30, model="shop/fraud", state="retraining"),
                ev("retrain_failed", t - 20, model="shop/fraud", state="failed", summary="retrain failed: OOM"),
                ev("triggered", t - 10, "d2", model="shop/other", state="triggered")])
    log.close()
    out = str(tmp_path / "rec")
    res = CliRunner().invoke(audit, ["--model", "fraud", "--since", "1h", "--sqlite", path, "-o", out])
    assert res.exit_code == 0, res.output
    assert "shop/fraud: 1 decisions (1 failed), 1 alerts, 1 approvals" in res.output
    rec = json.load(open(out + ".json"))
    assert rec["format"] == "raywatch.audit-record" and rec["approvals"][0]["by"] == "alice"
    assert [e["kind"] for e in rec["decisions"][0]["events"]][-1] == "retrain_failed"
    page = open(out + ".html").read()
    assert "Audit record — shop/fraud" in page and "&lt;ok&gt;" in page and "retrain failed: OOM" in page
    assert stat.S_IMODE(os.stat(out + ".html").st_mode) == 0o600
    bad = CliRunner().invoke(audit, ["--model", "nope", "--sqlite", path, "--json-only"])
    assert bad.exit_code != 0 and "no single model named 'nope'" in bad.output


# --------------------------------------------------------------------------- configuration


def test_configuration_errors_name_the_field():
    with pytest.raises(ConfigError) as err:
        parse_config({"remediation": {"retrain": {"function": "m:f"}, "validation": {"metric": "acc"}},
                      "payload_log": {"path": "/x"}}, RemediationSettings, source="monitor.yaml")
    assert str(err.value).startswith("monitor.yaml: remediation.validation.metric: expected one of accuracy, f1")
    with pytest.raises(ConfigError, match="remediation.retrain: required field is missing"):
        parse_config({"remediation": {}, "payload_log": {"path": "/x"}}, RemediationSettings, source="m.yaml")
    with pytest.raises(ConfigError, match="guardrails.min_interval: expected a duration"):
        parse_config({"remediation": {"retrain": {"function": "m:f"}, "guardrails": {"min_interval": "soon"}},
                      "payload_log": {"path": "/x"}}, RemediationSettings, source="m.yaml")


EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "monitor-remediation.yaml")


def test_the_example_configuration_loads(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.example/T/B/x")
    data = yaml.safe_load(open(EXAMPLE))
    s = parse_config({k: data[k] for k in ("model", "remediation", "payload_log")} | {"sinks": data["alerting"]["sinks"]},
                     RemediationSettings, source=EXAMPLE)
    assert s.remediation.guardrails.require_approval and s.payload_log.path.startswith("s3://")
    assert s.remediation.retrain.function == "my_pkg.train:retrain" and s.remediation.guardrails.min_interval == 12 * 3600
    assert s.remediation.validation.metric == "roc_auc" and s.sinks[0].name == "slack"
    assert s.remediation.rollout.canary.guards.max_estimated_drop == 0.03 and s.remediation.estimated_metric() == "roc_auc"


def test_the_readme_shows_the_example():
    """README.md's "Closing the loop" settings are configs/monitor-remediation.yaml (which
    tests/readme loads as a whole MonitorConfig)."""
    readme = open(os.path.join(os.path.dirname(EXAMPLE), "..", "README.md")).read()
    section = readme[readme.index("## Closing the loop"):]
    block = section.split("<!-- test: yaml monitor -->\n```yaml")[1].split("```")[0]
    assert yaml.safe_load(block) == yaml.safe_load(open(EXAMPLE))


# --------------------------------------------------------------------------- promotion's serve config patch


def test_a_promotion_writes_the_user_config_back_into_the_serve_config(tmp_path):
    from raywatch.remediate.shell.serving import patched_user_config, write_serve_config

    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump({"applications": [
        {"name": "fraud", "route_prefix": "/fraud", "import_path": "my_pkg.app:build",
         "deployments": [{"name": "Scorer", "num_replicas": 2, "user_config": {"artifact": "s3://m/v1", "version": "v1"}}]},
        {"name": "other", "import_path": "x:y"}]}))
    os.chmod(path, 0o640)
    uc = patched_user_config({"artifact": "s3://m/v1", "version": "v1"}, "s3://m/v2", "v2")
    assert write_serve_config(str(path), "fraud", "Scorer", uc)
    data = yaml.safe_load(path.read_text())
    dep = data["applications"][0]["deployments"][0]
    assert dep == {"name": "Scorer", "num_replicas": 2, "user_config": {"artifact": "s3://m/v2", "version": "v2"}}
    assert data["applications"][1] == {"name": "other", "import_path": "x:y"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert not write_serve_config(str(path), "missing", "Scorer", uc)


def test_decision_notifications_are_webhook_payloads():
    from raywatch.remediate.notify import notification
    from raywatch.sinks.webhook import payload

    n = notification(ev("validation_failed", 1.0, model="shop/fraud", state="not_deployed",
                        summary="not deployed: improvement 0.01 below 0.05"))
    body = payload(n)
    a = body["alerts"][0]
    assert body["version"] == "4" and a["labels"]["step"] == "validation_failed" and a["labels"]["severity"] == "warning"
    assert a["labels"]["app"] == "shop" and a["annotations"]["summary"].startswith("not deployed")


# --------------------------------------------------------------------------- the controller's state is the trail


def test_a_restarted_controller_closes_open_decisions_and_keeps_the_guardrails(tmp_path):
    import asyncio
    import time

    from raywatch.remediate.shell.controller import RemediationController

    path = str(tmp_path / "trail.sqlite")
    t = time.time()
    log = open_audit_log(path)
    log.append([ev("triggered", t - 100, "open1", model="shop/Scorer", state="triggered"),
                ev("retrain_started", t - 90, "open1", model="shop/Scorer", state="retraining")])
    log.close()
    ctl = RemediationController(path)  # no Ray needed until a decision runs
    assert ctl.recovered == ["open1"]
    closed = ctl.audit.events("shop/Scorer", decision="open1")[-1]
    assert closed.kind == "failed" and "restarted while the decision was retraining" in closed.summary

    settings = {"remediation": {"retrain": {"function": "m:f"}, "guardrails": {"min_interval": "1h"}},
                "payload_log": {"path": str(tmp_path / "p")}}
    note = {"alerts": [{"status": "firing", "labels": {"alertname": "FeatureDrift", "app": "shop", "deployment": "Scorer"}},
                       {"status": "firing", "labels": {"alertname": "HighLatency", "app": "shop", "deployment": "Scorer"}},
                       {"status": "resolved", "labels": {"alertname": "FeatureDrift", "app": "shop", "deployment": "Scorer"}},
                       {"status": "firing", "labels": {"alertname": "FeatureDrift", "app": "x", "deployment": "Unknown"}}]}

    async def go():
        await ctl.register("shop/Scorer", settings)
        return await ctl.notify(note)

    out = asyncio.run(go())
    assert out["started"] == [] and len(out["skipped"]) == 1  # the retrain 90 s ago counts across the restart
    last = ctl.audit.events("shop/Scorer")[-1]
    assert last.kind == "skipped" and last.summary.startswith("min_interval: last retrain started")
    ctl.audit.close()
