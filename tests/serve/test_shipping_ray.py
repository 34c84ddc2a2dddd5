"""Shipping through Ray against a test-only recording actor (a double for the transport,
not for the stats core): routes, statuses, request ids and the window summary arrive; the
profile comes from the actor; when the actor dies the replica keeps serving, and every
request sent is either ingested or counted as dropped."""

import functools
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from rw_test_support import serve_http_port, wait_until

pytestmark = [pytest.mark.ray]

NAME, NS = "rw-test-recorder", "raywatch"


def _recorder_cls(ray):
    @ray.remote(num_cpus=0)
    class Recorder:
        def __init__(self, profile_bytes=None):
            self.batches = []
            self.registered = []
            self.labels = []
            self.profile_bytes = profile_bytes

        def register_model(self, model_key, config_dict, profile_bytes):
            self.registered.append((model_key, config_dict, profile_bytes))

        def get_profile(self, model_key):
            return self.profile_bytes

        def ingest(self, batch):
            self.batches.append(batch)
            return "ok"

        def feedback_many(self, items):
            self.labels.extend(items)
            return {"joined": len(items)}

        def dump(self):
            return self.batches, self.registered

        def dump_labels(self):
            return self.labels

    return Recorder


def _start_recorder(ray, profile_bytes=None):
    h = _recorder_cls(ray).options(name=NAME, namespace=NS, lifetime="detached").remote(profile_bytes)
    ray.get(h.dump.remote())
    return h


_wait = functools.partial(wait_until, interval=0.25)


def _http(base, method, path, body=None, headers=False, token=None):
    sent = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        out = e.code, e.read(), dict(e.headers)
    return out if headers else out[:2]


@pytest.fixture(scope="module")
def deployed(ray_cluster):
    import ray
    import ray.cloudpickle
    from fastapi import FastAPI, HTTPException
    from ray import serve

    import raywatch
    from raywatch.stats.profile import Profile

    rng = np.random.default_rng(0)
    profile = Profile.fit({"amount": rng.normal(100, 20, 1000), "country": rng.choice(["fr", "de"], 1000),
                           "prediction": rng.integers(0, 2, 1000), "score": rng.random(1000)})
    recorder = _start_recorder(ray, profile.to_bytes())

    api = FastAPI()

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    @serve.ingress(api)
    class Fraud:
        @api.post("/score/{channel}")
        async def score(self, channel: str, body: dict):
            if body.get("amount", 0) < 0:
                raise HTTPException(status_code=422, detail="negative amount")
            return {"prediction": int(body["amount"] > 120), "score": min(1.0, body["amount"] / 200)}

        @api.get("/boom")
        def boom(self):
            raise RuntimeError("boom")

    cfg = {
        "actor": {"name": NAME, "namespace": NS},
        "capture": {"feedback": True},
        "shipping": {"flush_interval": 0.1, "create_actor": False, "max_pending_batches": 3, "max_retries": 1,
                     "retry_backoff": 0.1, "max_backoff": 0.3},
        "resources": {"interval": 0.5},
    }
    port = serve_http_port(serve)
    serve.run(raywatch.monitor(Fraud, cfg).bind(), name="fraud", route_prefix="/fraud")
    yield ray, serve, f"http://127.0.0.1:{port}/fraud", recorder
    serve.delete("fraud")
    for name in (NAME,):
        try:
            ray.kill(ray.get_actor(name, namespace=NS))
        except Exception:
            pass


def _all_batches(ray, recorder):
    batches, registered = ray.get(recorder.dump.remote())
    return batches, registered


def test_batches_carry_routes_statuses_summary_and_request_ids(deployed):
    ray, serve, base, recorder = deployed
    from raywatch.stats.summary import WindowSummary

    handle = serve.get_deployment_handle("Fraud", app_name="fraud")
    # the replica asks the actor for the reference profile as soon as it connects
    _wait(lambda: handle._raywatch_status.remote().result()["profile"] == "actor")
    for i in range(12):
        assert _http(base, "POST", "/score/web", {"amount": 90 + 5 * i, "country": "fr"})[0] == 200
    assert _http(base, "POST", "/score/app", {"amount": -1})[0] == 422
    assert _http(base, "GET", "/boom")[0] == 500

    def arrived():
        b, _ = _all_batches(ray, recorder)
        return b if sum(x.requests for x in b) >= 14 else None

    batches = _wait(arrived)
    routes, statuses, errors = {}, {}, {}
    rows = 0
    preds = []
    for b in batches:
        for d, acc in ((b.routes, routes), (b.statuses, statuses), (b.errors, errors)):
            for k, v in d.items():
                acc[k] = acc.get(k, 0) + v
        if b.summary:
            rows += WindowSummary.from_bytes(b.summary).rows
        preds.extend(b.predictions)
    assert routes == {"/score/{channel}": 13, "/boom": 1}  # templates, not raw paths
    assert statuses == {"200": 12, "422": 1, "500": 1}
    assert errors.get("RuntimeError") == 1
    assert rows == 12  # profile fetched from the actor; features + predictions of the 200s summarized
    assert len(preds) >= 12 and all(isinstance(rid, str) and rid for rid, _, _ in preds)
    assert {p for _, p, _ in preds} <= {0, 1}
    assert batches[-1].app == "fraud" and batches[-1].deployment == "Fraud" and batches[-1].model_key == "fraud/Fraud"
    seqs = [b.seq for b in batches]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    _, registered = _all_batches(ray, recorder)
    assert registered and registered[0][0] == "fraud/Fraud" and registered[0][2] is None


def test_feedback_route_on_the_app_joins_by_serve_request_id(deployed):
    ray, serve, base, recorder = deployed
    status, body, headers = _http(base, "POST", "/score/web", {"amount": 150.0}, headers=True)
    rid = {k.lower(): v for k, v in headers.items()}["x-request-id"]

    def shipped():
        b, _ = _all_batches(ray, recorder)
        return [p for x in b for p in x.predictions if p[0] == rid]

    assert _wait(shipped) == [(rid, 1, 0.75)]  # the id a client sees is the id stored
    st, answer = _http(base, "POST", "/-/raywatch/feedback", {"request_id": rid, "label": 1})
    assert st == 200 and json.loads(answer)["received"] == 1
    assert ray.get(recorder.dump_labels.remote())[-1] == (rid, 1, "fraud/Fraud")
    st, answer = _http(base, "POST", "/-/raywatch/feedback", {"label": 1})
    assert st == 400 and "request_id" in json.loads(answer)["error"]
    # labels for another app's model are refused: the route is this deployment's own
    st, answer = _http(base, "POST", "/-/raywatch/feedback", {"request_id": rid, "label": 0, "model": "other/Model"})
    assert st == 403 and "other/Model" in json.loads(answer)["error"]
    assert ray.get(recorder.dump_labels.remote())[-1] == (rid, 1, "fraud/Fraud")
    # the user's routes are untouched
    assert _http(base, "POST", "/score/web", {"amount": 10.0})[0] == 200


def test_feedback_route_on_plain_sync_and_async_handlers(deployed, monkeypatch):
    """Plain ``__call__(self, request)`` handlers answer the feedback route too; a sync one
    (run in Serve's thread pool) reads the body on the replica's event loop. Through Serve's
    proxy, the route asks for its token (401) and limits each client (429 + Retry-After)."""
    ray, serve, base, recorder = deployed
    import raywatch

    monkeypatch.setenv("RW_TEST_FEEDBACK_TOKEN", "fb-s3cr3t")

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class PlainSync:
        def __call__(self, request):
            return {"prediction": int(float(request.query_params.get("x", 0)) > 1), "kind": "sync"}

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class PlainAsync:
        async def __call__(self, request):
            body = await request.json()
            return {"prediction": int(body.get("x", 0) > 1), "kind": "async"}

    cfg = {"actor": {"name": NAME, "namespace": NS},
           "capture": {"feedback": True, "feedback_token": "${RW_TEST_FEEDBACK_TOKEN}",
                       "feedback_rate_limit": 0.05, "feedback_burst": 3},
           "shipping": {"flush_interval": 0.1, "create_actor": False}, "resources": {"enabled": False}}
    root = base.rsplit("/", 1)[0]
    try:
        for app, cls in (("plainsync", PlainSync), ("plainasync", PlainAsync)):
            serve.run(raywatch.monitor(cls, cfg).bind(), name=app, route_prefix=f"/{app}")
            kind = app[len("plain"):]
            status, body, headers = _http(root, "POST", f"/{app}?x=2", {"x": 2}, headers=True)
            assert status == 200 and json.loads(body) == {"prediction": 1, "kind": kind}
            rid = {k.lower(): v for k, v in headers.items()}["x-request-id"]
            route = f"/{app}/-/raywatch/feedback"
            st, answer = _http(root, "POST", route, {"request_id": rid, "label": 1})
            assert st == 401 and "fb-s3cr3t" not in answer.decode()  # no token
            st, answer = _http(root, "POST", route, {"request_id": rid, "label": 1}, token="fb-s3cr3t")
            assert st == 200, answer
            assert json.loads(answer) == {"received": 1, "joined": 1}  # the route, not the user's code
            model = "PlainSync" if kind == "sync" else "PlainAsync"
            assert (rid, 1, f"{app}/{model}") in ray.get(recorder.dump_labels.remote())
            st, answer = _http(root, "POST", route, [{"label": 0}], token="fb-s3cr3t")
            assert st == 400 and "request_id" in json.loads(answer)["error"]
            st, answer, hdrs = _http(root, "POST", route, {"request_id": rid, "label": 1}, headers=True, token="fb-s3cr3t")
            assert st == 429 and int({k.lower(): v for k, v in hdrs.items()}["retry-after"]) >= 1  # a burst of 3
            # the user's code still answers every other request
            assert json.loads(_http(root, "POST", f"/{app}?x=0", {"x": 0})[1]) == {"prediction": 0, "kind": kind}
    finally:
        for app in ("plainsync", "plainasync"):
            serve.delete(app)


def test_actor_gone_serving_goes_on_and_totals_reconcile(deployed):
    ray, serve, base, recorder = deployed
    handle = serve.get_deployment_handle("Fraud", app_name="fraud")
    sent = 0

    def send(n):
        nonlocal sent
        for i in range(n):
            assert _http(base, "POST", "/score/web", {"amount": 100.0})[0] == 200
            sent += 1

    def settled():
        s = handle._raywatch_status.remote().result()
        idle = not (s["buffered"] or s["shipper"]["pending_batches"] or s["shipper"]["inflight_batches"])
        return s if idle else None

    status0 = _wait(settled)  # everything so far acknowledged: count from a clean slate
    before, _ = _all_batches(ray, recorder)
    seen = {(b.replica_id, b.seq) for b in before}
    dropped0 = handle._raywatch_status.remote().result()["dropped_total"]

    ray.kill(recorder, no_restart=True)

    def noticed():
        send(5)  # the stats actor is gone: requests are still served
        s = handle._raywatch_status.remote().result()
        return s["shipper"]["failures"] > status0["shipper"]["failures"]

    _wait(noticed)
    send(40)
    # the bounded queue overflows at the next flushes, and what it drops is counted
    _wait(lambda: handle._raywatch_status.remote().result()["dropped_total"] > dropped0,
          what="the overflow to be counted")

    recorder2 = _start_recorder(ray)
    send(5)

    def reconciled():
        b, _ = _all_batches(ray, recorder2)
        s = handle._raywatch_status.remote().result()
        if s["buffered"] or s["shipper"]["pending_batches"] or s["shipper"]["inflight_batches"]:
            return None
        fresh = {(x.replica_id, x.seq): x for x in b if (x.replica_id, x.seq) not in seen}
        ingested = sum(x.requests for x in fresh.values())
        # batches sent to the dead actor and then given up on are told as abandoned: as the
        # stats actor does, count those it never stored as dropped (raywatch.aggregate.model)
        told = {(x.replica_id, seq): n for x in b for seq, n in x.abandoned}
        abandoned = sum(n for key, n in told.items() if key not in seen and key not in fresh)
        dropped = max((x.dropped_total for x in b), default=0) - dropped0 + abandoned
        return (ingested, dropped, s) if ingested + dropped == sent and not s["shipper"]["abandoned_batches"] else None

    ingested, dropped, st = _wait(reconciled, timeout=60)
    assert dropped > 0 and ingested > 0
    assert st["dropped_total"] - dropped0 == dropped  # the actor was told every drop
