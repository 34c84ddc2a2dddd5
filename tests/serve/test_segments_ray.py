"""Issue 12 on a real local Ray cluster: monitored Serve deployments → stats actor → webhook.

* three replicas, one of them serving another model: the replica-outlier analysis names that
  replica, and the ``ReplicaOutlier`` alert names it and no other —
  test_a_replica_serving_another_model_*;
* a ``@serve.multiplexed`` deployment with two bad model ids among four: the model id is a
  segment without configuration, the bad ids are its worst segments, and one segment rule
  yields one alert per bad model id — test_multiplexed_*;
* fairness through the product path (predictions over HTTP, labels joined per group by the
  ``x-request-id`` Serve returns) equals fairlearn's on the same raw data within 1e-9 —
  test_fairness_*.
"""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from rw_batches import WebhookReceiver, unique_name
from rw_segments import assert_equals_fairlearn
from rw_test_support import serve_http_port, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.slow]

pytest.importorskip("fairlearn.metrics", reason="fairlearn is a test dependency (pip install .[test])")


def _profile(tmp_path, n=6000):
    from raywatch.stats.profile import Profile

    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 10.0, n)
    ref = {"x": x, "score": np.clip(x / 100.0, 0, 1), "prediction": (x > 55).astype(int)}
    path = tmp_path / "ref.rwprofile"
    Profile.fit(ref, seed=0).save(path)
    return str(path)


def _cfg(tmp_path, name, recv, rules, **extra):
    cfg = {
        "model": "m", "profile_path": _profile(tmp_path),
        "actor": {"name": name, "sqlite_path": None, "metrics_port": 0},
        "windows": {"length": 60, "rolling": 5, "grace": 1, "evaluation_interval": 1},
        "shipping": {"flush_interval": 0.2},
        "drift": {"alpha": 0.01},
        "alerting": {"rules": rules, "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1s",
                                               "group_by": ["..."]},
                     "sinks": [{"name": "hook", "type": "webhook", "url": recv.url}]},
    }
    cfg.update(extra)
    return cfg


def _cleanup(serve, app, name, recv):
    import ray

    from raywatch.actor import actor as actor_mod

    try:
        serve.delete(app)
    except Exception:
        pass
    try:
        ray.kill(ray.get_actor(name, namespace="raywatch"))
    except Exception:
        pass
    actor_mod._handles.clear()
    recv.close()


def _status(actor_cfg, key):
    import raywatch

    return raywatch.status(key, config=actor_cfg)["models"].get(key)


def _registered(actor_cfg, key):
    """Wait until the replicas have registered ``key`` with its stats actor (the actor is made
    by the first replica that ships; on a loaded machine that takes seconds, and the test's
    traffic should not race it)."""
    wait_until(lambda: _status(actor_cfg, key) is not None, timeout=120, what=f"{key} registered at its stats actor")


def test_a_replica_serving_another_model_is_named_and_alerted_alone(serve_clean, tmp_path):
    import ray
    from ray import serve

    import raywatch

    claims_name = unique_name("rw-claims")

    @ray.remote(num_cpus=0)
    class Claims:
        def __init__(self):
            self.n = 0

        def claim(self) -> bool:
            self.n += 1
            return self.n == 1

    claims = Claims.options(name=claims_name, namespace="raywatch-tests").remote()  # noqa: F841 (kept alive)
    recv = WebhookReceiver()
    name = unique_name("rw-rep")
    # the default ReplicaOutlier rule waits 10 minutes; the same rule without the wait
    # (latency between replicas on a loaded 2-core machine differs for real, and a slow replica
    # is an outlier too: the test is about stale weights, so only a 20x latency ratio counts)
    cfg = _cfg(tmp_path, name, recv, [{"name": "ReplicaOutlier", "expr": "replica_outlier > 0",
                                       "annotations": {"summary": "replica {{ $labels.replica }} differs"}}],
               attribution={"replicas": {"min_latency_ratio": 20.0}})

    @serve.deployment(num_replicas=3, ray_actor_options={"num_cpus": 0})
    class Scorer:
        def __init__(self):
            import ray as ray_in

            self.stale = ray_in.get(ray_in.get_actor(claims_name, namespace="raywatch-tests").claim.remote())
            self.replica = serve.get_replica_context().replica_tag

        def __call__(self, payload: dict):
            x = payload["x"] + (25.0 if self.stale else 0.0)  # stale weights: another model
            return {"prediction": int(x > 55), "score": min(1.0, max(0.0, x / 100.0))}

        def who(self):
            return self.replica, self.stale

    handle = serve.run(raywatch.monitor(Scorer, cfg).bind(), name="rep", route_prefix=None)
    actor_cfg = raywatch.MonitorConfig.model_validate(cfg)
    try:
        _registered(actor_cfg, "rep/Scorer")
        stale = wait_until(lambda: {r for r, s in (handle.who.remote().result() for _ in range(30)) if s},
                           what="the stale replica answered")
        (stale,) = stale
        rng = np.random.default_rng(1)

        def send(i):
            return handle.remote({"x": float(rng.normal(50.0, 10.0))}).result(timeout_s=60)

        def outliers():
            st = _status(actor_cfg, "rep/Scorer")
            reps = (st or {}).get("rolling", {}).get("replica_outliers") or {}
            return reps and next(iter(reps.values()))

        rep = None
        for _ in range(8):  # load until every replica has enough rows in the window
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(send, range(600)))
            try:
                rep = wait_until(lambda: (r := outliers()) and r.get("outliers") and r, timeout=10,
                                 what="replica outliers")
                break
            except AssertionError:
                continue
        assert rep is not None, _status(actor_cfg, "rep/Scorer")
        assert rep["outliers"] == [stale] and len(rep["replicas"]) == 3
        assert "score" in rep["replicas"][stale]["differing"]
        fired = wait_until(lambda: recv.firing("ReplicaOutlier"), what="ReplicaOutlier at the webhook")
        assert {a["labels"]["replica"] for a in fired} == {stale}
        assert all(a["labels"]["model"] == "m" and a["labels"]["deployment"] == "Scorer" for a in fired)
    finally:
        _cleanup(serve, "rep", name, recv)


def test_multiplexed_bad_models_are_segments_and_a_segment_rule_alerts_once_per_model(serve_clean, tmp_path):
    from ray import serve

    import raywatch

    recv = WebhookReceiver()
    name = unique_name("rw-mux")
    cfg = _cfg(tmp_path, name, recv, [{"name": "ModelScoreDrift",
                                       "expr": 'drift_detected{segment_column="model_id", feature="score"} == 1',
                                       "annotations": {"summary": "model {{ $labels.segment }} scores drifted"}}])

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Mux:
        @serve.multiplexed(max_num_models_per_replica=4)
        async def get_model(self, model_id: str):
            bias = 30.0 if model_id in ("m2", "m3") else 0.0  # two badly trained models among four
            return lambda x: min(1.0, max(0.0, (x + bias) / 100.0))

        async def __call__(self, payload: dict):
            model = await self.get_model(serve.get_multiplexed_model_id())
            s = model(payload["x"])
            return {"prediction": int(s > 0.55), "score": s}

    handle = serve.run(raywatch.monitor(Mux, cfg).bind(), name="mux", route_prefix=None)
    actor_cfg = raywatch.MonitorConfig.model_validate(cfg)
    try:
        _registered(actor_cfg, "mux/Mux")
        rng = np.random.default_rng(2)
        xs = rng.normal(50.0, 10.0, 1600)

        def send(i):
            return handle.options(multiplexed_model_id=f"m{i % 4}").remote({"x": float(xs[i])}).result(timeout_s=60)

        with ThreadPoolExecutor(8) as ex:
            list(ex.map(send, range(1600)))
        def segments_complete():
            # the rolling view is the last evaluation's (evaluation_interval 1 s) while the totals
            # are live: wait for the view that holds every request, not for the totals
            got = ((_status(actor_cfg, "mux/Mux") or {}).get("rolling", {}).get("segments") or {}).get("model_id")
            return got if got and sum(e["requests"] for e in got) >= 1600 else None

        segs = wait_until(segments_complete, what="the model_id segments with every request")
        assert {e["segment"] for e in segs} == {"m0", "m1", "m2", "m3"}
        assert {e["segment"] for e in segs[:2]} == {"m2", "m3"}  # worst first
        assert all("score" in e["drifted_columns"] for e in segs[:2])
        assert all(not e["drifted_columns"] for e in segs[2:])
        assert all(e["requests"] == 400 for e in segs)
        wait_until(lambda: {a["labels"]["segment"] for a in recv.firing("ModelScoreDrift")} == {"m2", "m3"},
                   what="one alert per bad model id")
        time.sleep(2)  # a few more evaluations: still no alert for the good models
        fired = recv.firing("ModelScoreDrift")
        assert {a["labels"]["segment"] for a in fired} == {"m2", "m3"}
        assert all(a["labels"]["segment_column"] == "model_id" for a in fired)
    finally:
        _cleanup(serve, "mux", name, recv)


def test_fairness_through_ray_equals_fairlearn_on_the_same_rows(serve_clean, tmp_path):
    import ray
    from ray import serve
    from starlette.requests import Request

    import raywatch

    recv = WebhookReceiver()
    name = unique_name("rw-fair")
    cfg = _cfg(tmp_path, name, recv, [], capture={"feedback": True},
               fairness={"attributes": {"sex": {"source": "feature"}}, "min_group_size": 1, "score": "score"})

    @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
    class Credit:
        async def __call__(self, request: Request):
            body = await request.json()
            x = body["x"] - (8.0 if body["sex"] == "f" else 0.0)  # a biased model
            return {"prediction": int(x > 55), "score": min(1.0, max(0.0, x / 100.0))}

    port = serve_http_port(serve)
    serve.run(raywatch.monitor(Credit, cfg).bind(), name="fair", route_prefix="/credit")
    actor_cfg = raywatch.MonitorConfig.model_validate(cfg)
    try:
        _registered(actor_cfg, "fair/Credit")
        rng = np.random.default_rng(3)
        n = 500
        xs, sexes = rng.normal(55.0, 10.0, n), rng.choice(["f", "m"], n)

        def send(i):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/credit",
                                         data=json.dumps({"x": float(xs[i]), "sex": str(sexes[i])}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.headers["x-request-id"], json.loads(r.read())["prediction"]

        with ThreadPoolExecutor(8) as ex:
            answers = list(ex.map(send, range(n)))
        y_pred = np.array([p for _, p in answers])
        y_true = (xs + rng.normal(0, 5, n) > 55).astype(int)  # the truth does not depend on sex
        wait_until(lambda: (_status(actor_cfg, "fair/Credit") or {}).get("totals", {}).get("predictions", 0) >= n,
                   what="predictions shipped")
        h = ray.get_actor(name, namespace="raywatch")
        got = ray.get(h.feedback_many.remote([(rid, int(y), "fair/Credit") for (rid, _), y in zip(answers, y_true)]))
        assert got["joined"] == n
        rep = wait_until(lambda: (f := ((_status(actor_cfg, "fair/Credit") or {}).get("rolling", {}).get("fairness")
                                        or {}).get("sex")) and sum(
            (g["true_positive_rate"] or {}).get("n", 0) + (g["false_positive_rate"] or {}).get("n", 0)
            for g in f["groups"].values()) == n and f, what="fairness with every label")
        assert_equals_fairlearn(rep, y_true, y_pred, sexes)
        assert rep["reference"] == "m" and rep["adverse_impact"] == ["f"]  # selected less often: below 4/5
    finally:
        _cleanup(serve, "fair", name, recv)
