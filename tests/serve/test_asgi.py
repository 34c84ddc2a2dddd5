"""The ASGI tee of an ``@serve.ingress`` class: status, route and a bounded copy of the body,
sampling decided once per request, predictions kept for feedback, and the feedback route."""

import asyncio

from monitored_helpers import (  # noqa: F401 (no_ray_transport is an autouse fixture)
    asgi_instance, feedback_actor, ignore_send, ingress,
    make, no_ray_transport, one_json_request, records, stop,
)

from raywatch.config import MonitorConfig
from raywatch.serve.capture import STATUS
from raywatch.serve.methods import MONITOR_ATTR


def test_asgi_call_captures_status_route_and_tees_body():
    class Route:
        path = "/items/{id}"

    async def app(scope, receive, send):
        msg = await receive()
        assert msg["body"] == b'{"amount": 5}'  # the app still gets the whole body
        scope["route"] = Route()
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"prediction": 1}'})

    M, obj = make(ingress(app), MonitorConfig(resources={"enabled": False}))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b'{"amount": 5}', "more_body": False}

    async def send(msg):
        sent.append(msg)

    try:
        asyncio.run(obj({"type": "http", "query_string": b""}, receive, send))
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        (r,) = records(obj)
        assert r[STATUS] == 201 and r[9] == "/items/{id}"
        mon = obj.__dict__[MONITOR_ATTR]
        assert mon.builder.extractor.features(r[6], r[7]) == [{"amount": 5}]
        assert mon.builder.extractor.predictions(r[8]) == [{"prediction": 1}]
    finally:
        stop(obj)


def test_asgi_sampling_is_decided_once():
    obj = asgi_instance(MonitorConfig(resources={"enabled": False}, capture={"sample_rate": 0.5},
                                       shipping={"flush_interval": 3600, "flush_max_records": 100_000,
                                                 "max_buffer_bytes": 1 << 40}))  # (no early flush for the byte budget)
    try:
        async def many():
            for _ in range(2000):
                await obj({"type": "http", "query_string": b""}, one_json_request, ignore_send)

        asyncio.run(many())
        recs = records(obj)
        assert len(recs) == 2000
        kept = sum(r[6] is not None for r in recs)
        assert 850 < kept < 1150  # ~50 %, not 25 % (sampled twice) — binomial sd is ~22
        assert all((r[6] is None) == (r[8] is None) for r in recs)
    finally:
        stop(obj)


def test_asgi_feedback_keeps_predictions_of_unsampled_requests():
    obj = asgi_instance(MonitorConfig(resources={"enabled": False}, capture={"sample_rate": 0.0, "feedback": True}))
    try:
        asyncio.run(obj({"type": "http", "query_string": b""}, one_json_request, ignore_send))
        (r,) = records(obj)
        assert r[6] is None and r[8] == b'{"prediction": 0}'
    finally:
        stop(obj)


def test_feedback_route_answers_without_the_users_code():
    import json

    seen = []
    Actor = feedback_actor(seen)

    obj = asgi_instance(MonitorConfig(resources={"enabled": False}, capture={"feedback": True}))
    mon = obj.__dict__[MONITOR_ATTR]
    mon.shipper.handle = Actor()
    sent = []

    async def send(msg):
        sent.append(msg)

    def call(body, path="/app/-/raywatch/feedback", method="POST"):
        sent.clear()

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        asyncio.run(obj({"type": "http", "path": path, "method": method, "query_string": b""}, receive, send))
        return sent[0]["status"], json.loads(sent[1]["body"]) if sent[1]["body"][:1] in (b"{", b"[") else sent[1]["body"]

    try:
        assert call(b'{"request_id": "r1", "label": 1}') == (200, {"received": 1, "joined": 1})
        assert seen == [[("r1", 1, "default/Ingress")]]
        assert call(b'[{"request_id": "r2", "label": 0, "model": "Ingress"}]')[0] == 200
        assert seen[-1] == [("r2", 0, "default/Ingress")]  # the deployment's own name is its model
        status, answer = call(b"not json")
        assert status == 400 and "JSON" in answer["error"]
        assert call(b'{"label": 1}')[0] == 400
        # other paths and methods reach the user's app, which is not called for feedback
        assert call(b"{}", path="/app/predict") == (200, {"prediction": 0})
        assert call(b"{}", method="GET")[0] == 200 and len(seen) == 2
        recs = records(obj)
        assert len(recs) == 2 and all(r[STATUS] == 200 for r in recs)  # feedback posts are not requests
        mon.shipper.handle = None
        mon.transport.resolve = lambda: (_ for _ in ()).throw(LookupError("no actor"))
        assert call(b'{"request_id": "r3", "label": 1}')[0] == 503
    finally:
        stop(obj)
    off = asgi_instance(MonitorConfig(resources={"enabled": False}))  # feedback off: no route
    try:
        sent.clear()

        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        asyncio.run(off({"type": "http", "path": "/-/raywatch/feedback", "method": "POST", "query_string": b""}, receive, send))
        assert sent[1]["body"] == b'{"prediction": 0}'
    finally:
        stop(off)
