"""Serve config YAML on a real Ray cluster: monitoring switched on and tuned from the YAML
alone, hot reload through ``user_config`` without restarting the replica, and a YAML mistake
failing the deploy with the file, the field path and what was expected."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from rw_test_support import free_port, wait_until

from raywatch.config import ConfigError

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _demo_config(tmp_path: Path, app_name: str, actor: Dict[str, Any], raywatch_uc: Dict[str, Any], user_uc: Dict[str, Any]) -> Path:
    """configs/serve-demo.yaml with its own app name, actor and user_config."""
    data = yaml.safe_load((CONFIGS / "serve-demo.yaml").read_text())
    app = data["applications"][0]
    app["name"] = app_name
    app["route_prefix"] = f"/{app_name}"
    app["args"]["monitor"]["actor"] = actor
    app["args"]["monitor"]["alerting"]["sinks"] = [{"name": "console", "type": "log"}]
    dep = app["deployments"][0]
    dep["user_config"] = dict(user_uc, raywatch=raywatch_uc)
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_plain_yaml_runs_unmonitored_and_monitoring_is_a_yaml_change(serve_clean, tmp_path):
    from ray import serve

    import raywatch.actor.api as api
    from deployments.fraud_data import generate_transactions, to_rows
    from raywatch.serve.deploy import deploy_serve_config

    suffix = uuid.uuid4().hex[:6]
    rows = to_rows(generate_transactions(200, seed=21)[0])

    # 1. the plain application, straight from configs/serve-fraud-plain.yaml
    plain = yaml.safe_load((CONFIGS / "serve-fraud-plain.yaml").read_text())
    plain["applications"][0].update(name=f"plain{suffix}", route_prefix=f"/plain{suffix}")
    plain_path = tmp_path / "plain.yaml"
    plain_path.write_text(yaml.safe_dump(plain))
    states = []
    deploy_serve_config(str(plain_path), timeout=180, on_change=states.append)
    assert states and states[-1] == {f"plain{suffix}": "RUNNING"}  # each change of state, reported once
    assert all(a != b for a, b in zip(states, states[1:]))
    h = serve.get_app_handle(f"plain{suffix}")
    out = [h.remote(r).result(timeout_s=30) for r in rows[:20]]
    assert all(set(o) == {"is_fraud", "probability"} for o in out)
    assert not hasattr(type(h), "_raywatch_status")

    # 2. the same model, monitored: only the YAML differs
    actor = {"name": f"rw-e-{suffix}", "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": free_port()}
    app_name = f"fraud{suffix}"
    path = _demo_config(tmp_path, app_name, actor, {"capture": {"sample_rate": 1.0}}, {"simulated_latency_ms": 0})
    deploy_serve_config(str(path), timeout=180)
    h = serve.get_app_handle(app_name)
    before = h._raywatch_status.remote().result(timeout_s=30)
    replica_id = before["labels"]["replica_id"]
    assert before["running"] and before["config"]["capture"]["sample_rate"] == 1.0
    monitored = [h.remote(r).result(timeout_s=30) for r in rows]
    assert monitored[:20] == out  # same answers, monitored or not

    key = f"{app_name}/FraudModel"
    cfg = {"actor": actor}

    def model_status():
        m = api.status(key, config=cfg).get("models", {}).get(key)
        return m if m and (m.get("totals") or {}).get("requests", 0) >= len(rows) and m["drift"]["columns"] else None

    m = wait_until(model_status, 90)
    assert m["profile"] is True

    # the CLI reads the same actor: status and the report from the running actor
    from click.testing import CliRunner

    from raywatch.cli import main

    cfg_file = tmp_path / "actor.yaml"
    cfg_file.write_text(yaml.safe_dump({"actor": actor}))
    res = CliRunner().invoke(main, ["status", "--model", key, "--config", str(cfg_file)])
    assert res.exit_code == 0, res.output
    assert key in res.output and "latency p50" in res.output and "drift: amount ok" in res.output
    res = CliRunner().invoke(main, ["report", "--model", key, "--config", str(cfg_file), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "(1 model(s)" in res.output and 'aria-label="amount"' in (tmp_path / "r.html").read_text()
    assert set(m["drift"]["columns"]) >= {"amount", "hour", "merchant_category", "distance_km", "is_fraud", "probability"}
    assert {c["threshold"] for c in m["drift"]["columns"].values() if c["method"] in ("ks", "chisquare", "ztest")} == {0.01}

    # 3. a rollout that changes only user_config: raywatch's part and the model's own part
    path = _demo_config(
        tmp_path, app_name, actor,
        {"capture": {"sample_rate": 0.5}, "drift": {"alpha": 0.002}},
        {"simulated_latency_ms": 0, "threshold": 0.0},
    )
    deploy_serve_config(str(path), timeout=120)

    def reloaded():
        st = h._raywatch_status.remote().result(timeout_s=30)
        return st if st["config"]["capture"]["sample_rate"] == 0.5 else None

    after = wait_until(reloaded, 60)
    assert after["labels"]["replica_id"] == replica_id  # not restarted
    assert after["reloads"] >= 1 and after["config"]["drift"]["alpha"] == 0.002
    assert h.remote(rows[0]).result(timeout_s=30)["is_fraud"] is True  # the model's own threshold=0 took effect too
    for r in rows:
        h.remote(r).result(timeout_s=30)

    def new_threshold():
        m = api.status(key, config=cfg)["models"][key]
        ths = {c["threshold"] for c in m["drift"]["columns"].values() if c["method"] in ("ks", "chisquare", "ztest")}
        return ths if ths == {0.002} else None

    wait_until(new_threshold, 60)  # the stats actor tests drift at the new threshold
    for _, handle in api.actors(cfg):
        import ray

        ray.kill(handle)


def test_yaml_mistakes_fail_the_deploy_with_file_field_and_expectation(serve_clean, tmp_path):
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    from raywatch.serve.compat import deploy_apps

    from raywatch.serve.deploy import deploy_serve_config

    suffix = uuid.uuid4().hex[:6]
    data = yaml.safe_load((CONFIGS / "serve-demo.yaml").read_text())
    app = data["applications"][0]
    app.update(name=f"bad{suffix}", route_prefix=f"/bad{suffix}")
    app["args"]["monitor"]["windows"]["length"] = "soon"
    path = tmp_path / "serve-bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    # checked before anything is deployed: the file and the field path
    with pytest.raises(ConfigError) as err:
        deploy_serve_config(str(path))
    assert f"{path}: applications[0].args: monitor.windows.length: expected a duration such as '30s' or '5m', got 'soon'" in str(err.value)

    # deployed as `serve deploy` would (no raywatch pre-check): Serve's build fails the app
    # with raywatch's message
    deploy_apps(ServeDeploySchema.model_validate(data))

    def failed():
        a = serve.status().applications.get(f"bad{suffix}")
        return a if a is not None and str(a.status).endswith("DEPLOY_FAILED") else None

    a = wait_until(failed, 120)
    assert "raywatch.serve:app args: monitor.windows.length: expected a duration such as '30s' or '5m', got 'soon'" in a.message

    # the monitor settings in their own file: the message names that file
    mon = tmp_path / "monitor.yaml"
    mon.write_text("alerting:\n  rules:\n    - name: Slow\n      metric: latency_p95_seconds\n      op: '>'\n      threshold: fast\n")
    app["args"]["monitor"] = str(mon)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        deploy_serve_config(str(path))
    assert f"{mon}: alerting.rules[0].threshold: Input should be a valid number" in str(err.value)
    serve.delete(f"bad{suffix}")


def test_regressor_yaml_monitors_the_approval_model(serve_clean, tmp_path):
    from ray import serve

    import raywatch.actor.api as api
    from deployments.approval import FEATURES, load_polls
    from raywatch.serve.deploy import deploy_serve_config

    suffix = uuid.uuid4().hex[:6]
    data = yaml.safe_load((CONFIGS / "serve-approval.yaml").read_text())
    app = data["applications"][0]
    app_name = f"approval{suffix}"
    app.update(name=app_name, route_prefix=f"/{app_name}")
    actor = {"name": f"rw-e-{suffix}", "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": free_port()}
    app["args"]["monitor"]["actor"] = actor
    app["args"]["monitor"]["windows"] = {"length": "5s", "rolling": 2, "evaluation_interval": "1s"}
    path = tmp_path / "serve-approval.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    deploy_serve_config(str(path), timeout=180)

    cols, y = load_polls()
    h = serve.get_app_handle(app_name)
    answers = [h.remote({f: float(cols[f][i]) for f in FEATURES}).result(timeout_s=30) for i in range(0, 1000, 5)]
    err = [a["approval"] - y[i] for a, i in zip(answers, range(0, 1000, 5))]
    assert max(abs(e) for e in err) < 3.0

    key = f"{app_name}/ApprovalModel"

    def seen():
        m = api.status(key, config={"actor": actor}).get("models", {}).get(key)
        return m if m and m["drift"]["columns"] and (m.get("totals") or {}).get("requests", 0) >= len(answers) else None

    m = wait_until(seen, 90)
    assert m["labels"]["model"] == "approval" and m["labels"]["version"] == "ridge-v1"
    assert set(m["drift"]["columns"]) == set(FEATURES) | {"approval"}
    import ray

    for _, handle in api.actors({"actor": actor}):
        ray.kill(handle)


def test_committed_fraud_yaml_two_replicas_report_into_one_model(serve_clean, tmp_path):
    """configs/serve-fraud.yaml as committed (monitor settings in configs/monitor.yaml, two
    replicas); only the app name and the stats actor's name, file and port are changed."""
    from ray import serve

    import raywatch.actor.api as api
    from deployments.fraud_data import generate_transactions, to_rows
    from raywatch.serve.deploy import deploy_serve_config

    suffix = uuid.uuid4().hex[:6]
    app_name = f"fraud2r{suffix}"
    actor = {"name": f"rw-e-{suffix}", "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": free_port()}

    def patch(data):
        app = data["applications"][0]
        app["name"], app["route_prefix"] = app_name, f"/{app_name}"
        app["args"]["overrides"]["FraudModel"]["actor"] = actor
        app["args"]["overrides"]["FraudModel"]["alerting"] = {"dead_letter_path": str(tmp_path / "dead.jsonl")}

    deploy_serve_config(str(CONFIGS / "serve-fraud.yaml"), patch=patch, timeout=180)
    h = serve.get_app_handle(app_name)
    for r in to_rows(generate_transactions(300, seed=4)[0]):
        h.remote(r).result(timeout_s=30)
    key = f"{app_name}/FraudModel"

    def both_replicas():
        # registration (with the profile) is its own fire-and-forget call, and an async
        # actor need not run it before the first batches: wait for all three to land
        m = api.status(key, config={"actor": actor}).get("models", {}).get(key)
        return m if m and len(m["replicas"]) == 2 and m["totals"]["requests"] >= 300 and m["profile"] else None

    m = wait_until(both_replicas, 90)
    assert m["labels"]["model"] == "fraud" and m["labels"]["version"] == "2025-11-logreg"
    assert m["totals"]["requests"] == 300 and m["profile"] is True
    import ray

    for _, handle in api.actors({"actor": actor}):
        ray.kill(handle)
