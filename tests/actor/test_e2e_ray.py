"""End to end on a real Ray cluster: raywatch.monitor() replicas → stats actor → webhook.

One multi-replica monitored deployment under concurrent load, on a real Ray cluster:

* latency percentiles computed by the stats actor from the replicas' merged sketches agree
  with the client's own measurement — checked after phase A;
* drift injected mid-stream (phase B) is detected by the actor's own evaluation loop and
  its alert reaches a local webhook receiver (raywatch's webhook sink);
* the stats actor killed mid-traffic (phase C): every request is still served, the
  replicas re-create the actor by name, it resumes from SQLite, and totals reconcile:
  requests sent = requests ingested + drops reported.

test_ground_truth_over_http_joins_serve_request_ids covers "Ground truth" end to end: labels
keyed by the ``x-request-id`` Serve returns, POSTed to the actor's /feedback route, join the
predictions the replicas shipped, and give accuracy, precision, recall and ROC-AUC.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from rw_batches import WebhookReceiver, unique_name
from rw_test_support import serve_http_port, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.slow]


wait_for = functools.partial(wait_until, retry_errors=True)  # the actor may be restarting


def _remove(serve, app, actor_name):
    """Delete the Serve application and kill the stats actor (what is left of them)."""
    import ray as ray_mod

    from raywatch.actor import actor as actor_mod

    try:
        serve.delete(app)
    except Exception:
        pass
    try:
        ray_mod.kill(ray_mod.get_actor(actor_name, namespace="raywatch"))
    except Exception:
        pass
    actor_mod._handles.clear()


def test_monitored_deployment_drift_alert_latency_and_actor_restart(serve_clean, tmp_path):
    ray = serve_clean  # noqa: F841 (the fixture's cluster)
    import ray as ray_mod
    from ray import serve

    import raywatch
    from raywatch.actor import actor as actor_mod
    from raywatch.stats.profile import Profile

    rng = np.random.default_rng(0)
    ref_amount = rng.normal(100.0, 20.0, 3000)
    ref_age = rng.normal(40.0, 10.0, 3000)
    profile = Profile.fit({"amount": ref_amount, "age": ref_age,
                           "prediction": (ref_amount > 120).astype(int), "score": np.clip(ref_amount / 200, 0, 1)}, seed=0)
    profile_path = tmp_path / "reference.rwprofile"
    profile.save(profile_path)
    recv = WebhookReceiver()
    name = unique_name("rw-e2e")
    cfg = {
        "model": "fraud",
        "version": "v7",
        "profile_path": str(profile_path),
        "actor": {"name": name, "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": 0},
        "windows": {"length": 5, "rolling": 60, "grace": 1, "evaluation_interval": 1},
        "shipping": {"flush_interval": 0.2, "max_retries": 20, "retry_backoff": 0.2, "max_backoff": 1.0,
                     "max_pending_batches": 64},
        "resources": {"interval": 1},
        "alerting": {
            # metric/op/threshold rather than expr: see the final report on the expr round trip
            "rules": [{"name": "DataDrift", "metric": "dataset_drift", "op": ">", "threshold": 0, "severity": "critical",
                       "annotations": {"summary": "{{ $labels.model }} inputs drifted"}}],
            "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1s"},
            "sinks": [{"name": "hook", "type": "webhook", "url": recv.url}],
        },
    }

    @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
    class Fraud:
        def __call__(self, payload: dict):
            # the latency phase's requests take 50-250 ms, so that the client's own overhead
            # (a few ms, more when the shared machine is busy) stays small beside them
            time.sleep(random.uniform(0.05, 0.25) if payload.get("slow") else random.uniform(0.005, 0.02))
            return {"prediction": int(payload["amount"] > 120), "score": min(1.0, payload["amount"] / 200)}

    serve_http_port(serve)
    handle = serve.run(raywatch.monitor(Fraud, cfg).bind(), name="e2e", route_prefix=None)
    actor_cfg = raywatch.MonitorConfig.model_validate(cfg)
    sent = [0]
    lat = []
    lock = threading.Lock()

    def call(i, drift=False, slow=False):
        r = np.random.default_rng(i)
        payload = {"amount": float(r.normal(160.0 if drift else 100.0, 20.0)), "age": float(r.normal(60.0 if drift else 40.0, 10.0))}
        if slow:
            payload["slow"] = True
        t0 = time.perf_counter()
        out = handle.remote(payload).result(timeout_s=60)
        dt = time.perf_counter() - t0
        assert out["prediction"] in (0, 1)
        with lock:
            sent[0] += 1
            lat.append(dt)

    def load(n, start, drift=False, threads=8, slow=False):
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda i: call(i, drift, slow), range(start, start + n)))

    def status():
        return raywatch.status("e2e/Fraud", config=actor_cfg)["models"].get("e2e/Fraud")

    try:
        # ---------------------------------------------------------------- phase A: normal traffic
        # first one request at a time, so that the client's clock measures the model plus a
        # small, steady overhead (under concurrency on 2 shared cores, queueing in Serve's
        # router would dominate the client's figures), then concurrently
        load(80, 0, threads=1, slow=True)
        st = wait_for(lambda: (s := status()) and s["totals"]["requests"] >= 80 and s, what="first requests ingested")
        client = np.array(lat)
        roll = st["rolling"]
        for key, q in (("latency_p50_seconds", 0.5), ("latency_p95_seconds", 0.95)):
            c = float(np.quantile(client, q))
            # the replica's clock runs inside the client's: never more (+ the sketch's 1 %),
            # and less only by the client-side overhead (generous: the machine is shared)
            assert 0.75 * c - 0.02 <= roll[key] <= c * 1.02, (key, roll[key], c)
        load(320, 80)
        st = wait_for(lambda: (s := status()) and s["totals"]["requests"] >= 400 and s, what="phase A ingested")
        assert st["labels"] == {"app": "e2e", "deployment": "Fraud", "model": "fraud", "version": "v7"}
        assert len(st["replicas"]) == 2  # both replicas report
        assert st["drift"]["dataset_drift"] is False
        assert recv.firing("DataDrift") == []

        # ---------------------------------------------------------------- phase B: drift injected
        load(400, 10_000, drift=True)
        alerts = wait_for(lambda: recv.firing("DataDrift"), timeout=90, what="drift alert at the webhook")
        assert alerts[0]["labels"]["deployment"] == "Fraud" and alerts[0]["labels"]["model"] == "fraud"
        assert alerts[0]["annotations"]["summary"] == "fraud inputs drifted"
        st = status()
        assert st["drift"]["dataset_drift"] is True
        assert st["drift"]["columns"]["amount"]["drifted"] is True

        # ---------------------------------------------------------------- phase C: actor killed mid-traffic
        old = ray_mod.get_actor(name, namespace="raywatch")
        old_pid = ray_mod.get(old.info.remote())["pid"]
        traffic = threading.Thread(target=load, args=(600, 20_000), kwargs={"threads": 4})
        traffic.start()
        wait_for(lambda: sent[0] >= 950, interval=0.05, what="traffic under way")
        ray_mod.kill(old, no_restart=True)
        actor_mod._handles.clear()
        traffic.join(timeout=240)
        assert not traffic.is_alive()
        assert sent[0] == 1400  # every request was served while the actor was gone

        seen = {}

        def reconciled():
            s = status()
            t = s["totals"]
            seen.update(totals=t, replicas=s.get("replicas"))  # shown if the wait fails
            return s if t["requests"] + t["dropped"] == sent[0] else None

        try:
            st = wait_for(reconciled, timeout=120, what="requests sent == ingested + dropped")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: sent {sent[0]}, last seen {seen}") from None
        info = ray_mod.get(ray_mod.get_actor(name, namespace="raywatch").info.remote())
        assert info["pid"] != old_pid
        assert info["recovered"]["models"] == 1  # the new actor came back from SQLite
        assert st["profile"] is True
        assert st["totals"]["requests"] >= 800  # what was ingested before the kill survived it
    finally:
        _remove(serve, "e2e", name)
        recv.close()


def test_ground_truth_over_http_joins_serve_request_ids(serve_clean, tmp_path):
    """Labels keyed by the x-request-id Serve returns, POSTed to the actor's /feedback route,
    join the predictions the replicas shipped: accuracy/precision/recall/F1/ROC-AUC per window."""
    import urllib.request

    import ray as ray_mod
    from ray import serve
    from starlette.requests import Request

    import raywatch

    name = unique_name("rw-fb")
    cfg = {
        "model": "spam",
        "actor": {"name": name, "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": 0},
        "windows": {"length": 5, "rolling": 60, "grace": 1, "evaluation_interval": 1},
        "capture": {"feedback": True},
        "shipping": {"flush_interval": 0.2},
        "feedback": {"task": "classification", "positive_label": 1},
    }

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Spam:
        async def __call__(self, request: Request):
            body = await request.json()
            return {"prediction": int(body["x"] > 0.5), "score": float(body["x"])}

    port = serve_http_port(serve)
    serve.run(raywatch.monitor(Spam, cfg).bind(), name="fb", route_prefix="/spam")
    actor_cfg = raywatch.MonitorConfig.model_validate(cfg)
    try:
        rng = np.random.default_rng(1)
        truth = {}
        for i in range(60):
            x = float(rng.random())
            req = urllib.request.Request(f"http://127.0.0.1:{port}/spam", data=json.dumps({"x": x}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                rid = r.headers["x-request-id"]
                assert json.loads(r.read())["prediction"] == int(x > 0.5)
            truth[rid] = (int(x > 0.4), int(x > 0.5))  # (label, prediction): wrong for x in (0.4, 0.5]
        wait_for(lambda: (s := raywatch.status("fb/Spam", config=actor_cfg)["models"].get("fb/Spam"))
                 and s["totals"]["predictions"] >= 60, what="predictions shipped")
        url = ray_mod.get(ray_mod.get_actor(name, namespace="raywatch").api_address.remote())
        items = [{"request_id": rid, "label": y, "model": "fb/Spam"} for rid, (y, _) in truth.items()]
        req = urllib.request.Request(url + "/feedback", data=json.dumps(items).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read()) == {"accepted": 60, "joined": 60, "refused": {}}
        st = wait_for(lambda: (s := raywatch.status("fb/Spam", config=actor_cfg)["models"]["fb/Spam"])
                      and s["performance"].get("rows") == 60 and s, what="performance computed")
        perf = st["performance"]
        labels = np.array([y for y, _ in truth.values()])
        preds = np.array([p for _, p in truth.values()])
        assert perf["accuracy"] == pytest.approx(float(np.mean(labels == preds)))
        assert perf["precision"] == pytest.approx(1.0)  # predicted 1 means x > 0.5 > 0.4
        assert perf["recall"] == pytest.approx(preds.sum() / labels.sum())
        assert perf["roc_auc"] > 0.9  # the score (x itself) separates the labels
        assert st["totals"]["feedback_rows"] == 60
    finally:
        _remove(serve, "fb", name)
