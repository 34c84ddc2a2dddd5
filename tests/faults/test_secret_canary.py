"""The secret canary (issue 11): every secret raywatch can be given — each sink's URL, key,
token, header and password, the actor's API and feedback tokens, the replica's feedback token,
the profile signing key — is a canary, a random value that appears nowhere else. A monitored
deployment on the test cluster serves traffic until an alert fires; every receiver answers
500 with the request's path, query and credentials echoed back (the way a careless service
does), so every failure is logged and every notification goes to the dead-letter file.

Then every output raywatch makes is searched for the canaries: its logs (the driver's and
every Ray process's log files), ``/metrics``, ``/status`` (HTTP and the actor call), the
model's stored config and history, ``raywatch.status``, the replica's status, the offline
report, the four exports and ``check-config``, the dead letters, the DogStatsD datagrams,
and the SQLite file with its WAL and SHM (the whole state folder, byte for byte): zero hits.

So that the test cannot pass by not using the secrets, it also checks that each one reached
where it belongs (the receivers saw the canary URL paths, headers and keys; the actor's
doors let the canary tokens in and nothing else)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from rw_test_support import free_port, wait_until

from raywatch.stats.profile import Profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sinks"))  # the local receivers live there
from alert_receivers import Answer, DogStatsDReceiver, HTTPReceiver  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CANARY = "rwcanary" + uuid.uuid4().hex  # every secret below starts with it; it appears nowhere else
APP = "canary"
KEY = f"{APP}/Scorer"


def canary(name: str) -> str:
    return f"{CANARY}{name}"


class EchoReceiver(HTTPReceiver):
    """Answers every request 500 with what it was sent: the path and query, the credentials."""

    def _answer(self, req):
        creds = {h: req.headers.get(h) for h in ("Authorization", "DD-API-KEY", "DD-APPLICATION-KEY")}
        return Answer(500, {"error": f"no route for {req.raw_path}", "credentials": creds})


def _secrets(recv: HTTPReceiver) -> dict:
    return {
        "RW_CANARY_SLACK": recv.url(f"/services/{canary('slackpath')}?token={canary('slackquery')}"),
        "RW_CANARY_HOOK": recv.url(f"/hook/{canary('hookpath')}?key={canary('hookquery')}"),
        "RW_CANARY_HOOK_AUTH": f"Bearer {canary('hookheader')}",
        "RW_CANARY_PD": canary("pagerduty"),
        "RW_CANARY_DD_API": canary("ddapi"),
        "RW_CANARY_DD_APP": canary("ddapp"),
        "RW_CANARY_AM": canary("alertmanager"),
        "RW_CANARY_MAIL": canary("mailpassword"),
        "RW_CANARY_API": canary("apitoken"),
        "RW_CANARY_FEEDBACK": canary("feedbacktoken"),
        "RW_CANARY_PROFILE": canary("profilekey"),
        "RW_CANARY_REPLICA": canary("replicatoken"),
    }


def _config(recv: HTTPReceiver, statsd_port: int, state: Path, profile: Path, ports: dict) -> dict:
    fast = {"timeout": 2, "retry": {"max_attempts": 1}}
    return {
        "model": "canary", "version": "v1", "profile_path": str(profile),
        "capture": {"feedback_token": "${RW_CANARY_REPLICA}"},
        "shipping": {"flush_interval": 0.3},
        "windows": {"length": 2, "rolling": 2, "grace": 0.5, "evaluation_interval": 1},
        "resources": {"interval": 1},
        "actor": {"name": f"rw-canary-{uuid.uuid4().hex[:8]}", "sqlite_path": str(state / "stats.sqlite"),
                  "metrics_port": ports["metrics"], "api_port": ports["api"], "api_token": "${RW_CANARY_API}",
                  "feedback_tokens": [{"token": "${RW_CANARY_FEEDBACK}", "models": [KEY]}],
                  "profile_key": "${RW_CANARY_PROFILE}", "checkpoint_interval": 1},
        "alerting": {
            "rules": [{"name": "FeatureMissing", "expr": 'missing_share{feature="b"} > 0.5', "severity": "critical",
                       "annotations": {"summary": "{{ $labels.feature }} is missing"}}],
            "route": {"receiver": ["slack", "hook", "pd", "dd", "mail", "log"], "group_by": ["alertname"],
                      "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
            "sinks": [
                {"name": "slack", "type": "slack", "webhook_url": "${RW_CANARY_SLACK}", "rate_limit": 50, **fast},
                {"name": "hook", "type": "webhook", "url": "${RW_CANARY_HOOK}",
                 "headers": {"Authorization": "${RW_CANARY_HOOK_AUTH}"}, **fast},
                {"name": "pd", "type": "pagerduty", "routing_key": "${RW_CANARY_PD}", "url": recv.url("/pd"), **fast},
                {"name": "dd", "type": "datadog", "api_key": "${RW_CANARY_DD_API}", "app_key": "${RW_CANARY_DD_APP}",
                 "api_host": recv.url("").rstrip("/"), "statsd_port": statsd_port, **fast},
                {"name": "am", "type": "alertmanager", "url": recv.url("/am").rstrip("/"),
                 "bearer_token": "${RW_CANARY_AM}", "resend_delay": 1, **fast},
                {"name": "mail", "type": "email", "host": "127.0.0.1", "port": free_port(), "from": "rw@example.com",
                 "to": ["ops@example.com"], "username": "rw", "password": "${RW_CANARY_MAIL}", **fast},
                {"name": "log", "type": "log"},
            ],
        },
    }


def _http(url: str, token: str = None, body: dict = None) -> tuple:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def _cli(*args: str, env: dict) -> str:
    out = subprocess.run([sys.executable, "-m", "raywatch.cli", *args], capture_output=True, text=True,
                         timeout=120, env=env, cwd=str(ROOT))
    return f"$ raywatch {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"


def _hits(name: str, data) -> list:
    """Where the canary appears in ``data`` (text or bytes): a few characters around each hit."""
    raw = data if isinstance(data, bytes) else str(data).encode("utf-8", "replace")
    needle, out, i = CANARY.encode(), [], 0
    while (i := raw.find(needle, i)) >= 0 and len(out) < 3:
        out.append(f"{name}: ...{raw[max(0, i - 80):i + 60]!r}...")
        i += 1
    return out


def test_no_secret_leaves_in_any_output(serve_clean, tmp_path, monkeypatch, caplog):
    import ray
    from ray import serve

    import raywatch

    class Scorer:  # defined here: Ray pickles it by value
        def __call__(self, payload: dict) -> dict:
            return {"prediction": float(payload.get("a", 0.0) > 0)}

    caplog.set_level(logging.DEBUG, logger="raywatch")
    recv, statsd = EchoReceiver(), DogStatsDReceiver()
    secrets = _secrets(recv)
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    state = tmp_path / "state"
    rng = np.random.default_rng(0)
    profile = tmp_path / "signed.rwprofile"
    profile.write_bytes(Profile.fit({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500)}, seed=0)
                        .sign(secrets["RW_CANARY_PROFILE"]))
    ports = {"metrics": free_port(), "api": free_port()}
    cfg = _config(recv, statsd.port, state, profile, ports)
    cfg_file = tmp_path / "raywatch.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    outputs = {}
    try:
        handle = serve.run(raywatch.monitor(serve.deployment(Scorer, ray_actor_options={"num_cpus": 0}), cfg).bind(),
                           name=APP, route_prefix=None)
        for i in range(40):  # "b" missing: the alert fires
            handle.remote({"a": float(i % 7 - 3)}).result(timeout_s=60)
        # the replica creates the stats actor with its first flush
        actor = wait_until(lambda: ray.get_actor(cfg["actor"]["name"], namespace="raywatch"), timeout=60,
                           what="the stats actor", retry_errors=True)
        call = lambda m, *a: ray.get(getattr(actor, m).remote(*a), timeout=30)  # noqa: E731

        def dead_letters():
            files = sorted(state.glob("*dead-letters*"))
            text = "".join(p.read_text() for p in files)
            return files if all(f'"{s}"' in text for s in ("slack", "hook", "pd", "mail")) else None

        wait_until(dead_letters, timeout=90, interval=0.5, what="every HTTP and mail sink's notification dead-lettered")
        wait_until(lambda: any(r.path.startswith("/am") for r in recv.requests), timeout=30, what="alertmanager pushed")
        statsd.wait_for(lambda items: any(i["kind"] == "event" for i in items), timeout=30)

        # where each secret belongs, it went
        paths = " ".join(r.raw_path for r in recv.requests)
        auths = [r.headers.get("Authorization") for r in recv.requests]
        assert canary("slackpath") in paths and canary("hookquery") in paths
        assert f"Bearer {canary('hookheader')}" in auths and f"Bearer {canary('alertmanager')}" in auths
        assert any(canary("pagerduty") in r.raw.decode() for r in recv.requests if r.path == "/pd")
        assert any(r.headers.get("DD-API-KEY") == canary("ddapi") for r in recv.requests)
        base = f"http://127.0.0.1:{ports['api']}"
        assert _http(base + "/status")[0] == 401 and _http(base + "/status", canary("wrong"))[0] == 401
        assert _http(base + "/status", secrets["RW_CANARY_FEEDBACK"])[0] == 403  # a feedback token: /feedback only
        code, outputs["http /status"] = _http(base + "/status", secrets["RW_CANARY_API"])
        assert code == 200 and KEY in outputs["http /status"]
        code, outputs["http /feedback"] = _http(base + f"/feedback/{KEY}", secrets["RW_CANARY_FEEDBACK"],
                                                {"request_id": "r-1", "label": 1})
        assert code < 300, outputs["http /feedback"]
        assert _http(base + f"/feedback/{KEY}", canary("wrong"), {"request_id": "r-2", "label": 1})[0] == 401

        # every output
        outputs["http /metrics"] = _http(f"http://127.0.0.1:{ports['metrics']}/metrics")[1]
        outputs["actor status"] = json.dumps(call("status"), default=str)
        assert call("status", KEY)["models"][KEY]["profile"], "the signed profile was refused"
        outputs["actor history"] = json.dumps(call("history"), default=str)
        outputs["stored config"] = json.dumps(call("get_config", KEY), default=str)
        outputs["raywatch.status"] = json.dumps(raywatch.status(KEY, config=cfg), default=str)
        outputs["replica status"] = json.dumps(handle._raywatch_status.remote().result(timeout_s=30), default=str)
        assert call("checkpoint")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        report = tmp_path / "report.html"
        outputs["raywatch report"] = _cli("report", "--sqlite", str(state / "stats.sqlite"), "-o", str(report), env=env)
        outputs["report.html"] = report.read_bytes()
        for what in ("alertmanager-config", "datadog-monitors", "grafana-dashboard", "prometheus-rules"):
            outputs[f"export {what}"] = _cli("export", what, "--config", str(cfg_file), env=env)
        outputs["check-config"] = _cli("check-config", str(cfg_file), env=env)
        outputs["dogstatsd"] = json.dumps(statsd.items, default=str)
    finally:
        try:
            serve.delete(APP)
            ray.kill(ray.get_actor(cfg["actor"]["name"], namespace="raywatch"))
        except Exception:
            pass
        recv.close()
        statsd.close()

    for p in sorted(state.rglob("*")):  # SQLite file, WAL, SHM, dead letters: byte for byte
        if p.is_file():
            outputs[f"state {p.name}"] = p.read_bytes()
    assert any(n.startswith("state stats.sqlite") for n in outputs) and any("dead-letters" in n for n in outputs)
    outputs["driver log"] = "\n".join(r.getMessage() for r in caplog.records)
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    for p in sorted(logs.rglob("*")):
        if p.is_file():
            outputs[f"ray log {p.name}"] = p.read_bytes()
    assert any(n.startswith("ray log worker") for n in outputs)
    hits = [h for name, data in outputs.items() for h in _hits(name, data)]
    assert hits == []
