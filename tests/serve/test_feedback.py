"""The replica's feedback route is locked, the same way for the three handler variants
(an ASGI ingress, a plain ``async`` handler, a plain sync handler): labels for its own model
only (403), an optional token (401), a per-client rate limit (429 + Retry-After) and a body
read in chunks against its limit (413)."""

import asyncio
import json

import anyio
import pytest
from monitored_helpers import asgi_instance, feedback_actor, no_ray_transport, stop  # noqa: F401
from starlette.requests import Request

from raywatch.config import MonitorConfig
from raywatch.serve import subclass
from raywatch.serve.feedback import FeedbackGate
from raywatch.serve.methods import MONITOR_ATTR

PATH = "/app/-/raywatch/feedback"


class AsyncPlain:
    async def __call__(self, request):
        return "user"


class SyncPlain:
    def __call__(self, request):
        return "user"


def _cfg(**capture):
    return MonitorConfig(resources={"enabled": False}, capture={"feedback": True, **capture})


class Variant:
    """One handler variant, driven with raw ASGI pieces: (status, headers, answer)."""

    def __init__(self, kind, cfg):
        self.kind = kind
        if kind == "asgi":
            self.obj = asgi_instance(cfg)
        else:
            self.obj = subclass.monitored_class(AsyncPlain if kind == "async" else SyncPlain, cfg)()
        self.seen = []
        self.obj.__dict__[MONITOR_ATTR].shipper.handle = feedback_actor(self.seen)()
        self.reads = 0

    def post(self, body=b"", chunks=None, headers=(), client=("10.0.0.1", 5000)):
        chunks = list(chunks) if chunks is not None else [body]
        self.reads = 0

        async def receive():
            i = self.reads
            self.reads += 1
            if i >= len(chunks):
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}

        scope = {"type": "http", "path": PATH, "method": "POST", "query_string": b"", "client": client,
                 "headers": [(k.encode(), v.encode()) for k, v in headers]}
        if self.kind == "asgi":
            sent = []

            async def send(msg):
                sent.append(msg)

            asyncio.run(self.obj(scope, receive, send))
            hdrs = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
            return sent[0]["status"], hdrs, json.loads(sent[1]["body"])
        request = Request(scope, receive)
        if self.kind == "async":
            resp = asyncio.run(self.obj(request))
        else:
            async def in_thread_pool():  # as Serve runs a sync method
                return await anyio.to_thread.run_sync(self.obj, request)

            resp = asyncio.run(in_thread_pool())
        return resp.status_code, dict(resp.headers), json.loads(resp.body)

    def close(self):
        stop(self.obj)


KINDS = ["asgi", "async", "sync"]


@pytest.fixture
def variant(request):
    made = []

    def make(kind, **capture):
        v = Variant(kind, _cfg(**capture))
        made.append(v)
        return v

    yield make
    for v in made:
        v.close()


@pytest.mark.parametrize("kind", KINDS)
def test_labels_for_another_model_are_refused(variant, kind):
    v = variant(kind)
    own = v.obj.__dict__[MONITOR_ATTR].labels.model_key
    status, _, answer = v.post(json.dumps([{"request_id": "r1", "label": 1},
                                           {"request_id": "r2", "label": 0, "model": "other/Model"}]).encode())
    assert status == 403 and "other/Model" in answer["error"] and v.seen == []
    status, _, _ = v.post(json.dumps({"request_id": "r3", "label": 1, "model": own}).encode())
    assert status == 200 and v.seen == [[("r3", 1, own)]]


@pytest.mark.parametrize("kind", KINDS)
def test_a_token_is_required_when_configured(variant, kind, monkeypatch):
    monkeypatch.setenv("RW_TEST_FEEDBACK_TOKEN", "s3cr3t-token")
    v = variant(kind, feedback_token="${RW_TEST_FEEDBACK_TOKEN}")
    body = b'{"request_id": "r1", "label": 1}'
    status, headers, answer = v.post(body)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer") and "s3cr3t" not in json.dumps(answer)
    assert v.post(body, headers=[("authorization", "Bearer wrong")])[0] == 401
    assert v.post(body, headers=[("authorization", "Basic s3cr3t-token")])[0] == 401
    assert v.seen == [] and v.reads == 0  # refused before the body is read
    assert v.post(body, headers=[("authorization", "Bearer s3cr3t-token")])[0] == 200 and len(v.seen) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_each_client_is_rate_limited_with_retry_after(variant, kind):
    v = variant(kind, feedback_rate_limit=0.5, feedback_burst=2)
    body = b'{"request_id": "r1", "label": 1}'
    assert [v.post(body)[0] for _ in range(2)] == [200, 200]
    status, headers, answer = v.post(body)
    assert status == 429 and headers["retry-after"] == "2" and "retry" in answer["error"]
    assert v.post(body, client=("10.0.0.2", 1))[0] == 200  # another client has its own budget
    assert len(v.seen) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_the_body_is_read_in_chunks_against_its_limit(variant, kind):
    v = variant(kind, feedback_max_body_bytes=1000)
    status, _, answer = v.post(chunks=[b" " * 400] * 100)  # 40 kB, sent in 400-byte chunks
    assert status == 413 and "1000" in answer["error"]
    assert v.reads == 3  # stopped at the chunk that passed the limit, not after all of it
    status, _, _ = v.post(b'{"request_id": "r1", "label": 1}', headers=[("content-length", "50000")])
    assert status == 413 and v.reads == 0  # a declared length over the limit is not read at all
    ok = b'{"request_id": "r1", "label": 1}'
    assert v.post(chunks=[ok[:10], ok[10:]])[0] == 200 and v.seen == [[("r1", 1, v.obj.__dict__[MONITOR_ATTR].labels.model_key)]]


def test_gate_forgets_the_oldest_clients_and_reconfigures():
    cfg = _cfg(feedback_rate_limit=1, feedback_burst=1)
    now = [0.0]
    gate = FeedbackGate(cfg.capture, clock=lambda: now[0], max_clients=3)
    assert [gate.admit(c) for c in "abc"] == [None, None, None]
    assert gate.admit("a") == 1.0
    gate.admit("d")  # the table is full: the least recently seen ("b") is forgotten
    assert sorted(gate._buckets) == ["a", "c", "d"]
    now[0] = 0.5
    assert gate.admit("a") == pytest.approx(0.5)
    gate.configure(_cfg(feedback_rate_limit=10, feedback_burst=5).capture)
    now[0] = 1.0
    assert gate.admit("a") is None and gate.rate == 10


def test_user_config_reload_locks_the_route(variant, monkeypatch):
    monkeypatch.setenv("RW_TEST_FEEDBACK_TOKEN", "t0k3n")
    v = variant("asgi")
    body = b'{"request_id": "r1", "label": 1}'
    assert v.post(body)[0] == 200
    mon = v.obj.__dict__[MONITOR_ATTR]
    assert mon.reconfigure({"capture": {"feedback_token": "${RW_TEST_FEEDBACK_TOKEN}", "feedback_max_body_bytes": 10}})
    assert v.post(body)[0] == 401
    assert v.post(body, headers=[("authorization", "Bearer t0k3n")])[0] == 413
