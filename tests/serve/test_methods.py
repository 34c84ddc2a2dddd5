"""The request-path method wrappers: every kind of method keeps its kind and its results, streams
are measured to their end, ``@serve.batch`` still batches, and a sync plain HTTP handler answers
the feedback route."""

import asyncio
import inspect

import pytest
from monitored_helpers import (  # noqa: F401 (no_ray_transport is an autouse fixture)
    Model, feedback_actor, make, no_ray_transport, records, stop,
)

from raywatch.config import MonitorConfig
from raywatch.serve import compat, subclass
from raywatch.serve.capture import OUTCOME
from raywatch.serve.methods import MONITOR_ATTR


def test_kinds_are_preserved_and_results_unchanged():
    M, obj = make(Model, None, 3)
    try:
        assert M.__name__ == "Model" and issubclass(M, Model)
        assert not inspect.iscoroutinefunction(M.__call__)
        assert inspect.iscoroutinefunction(M.coro)
        assert inspect.isgeneratorfunction(M.gen)
        assert inspect.isasyncgenfunction(M.agen)
        assert obj(2) == 6
        assert asyncio.run(obj.coro(2)) == 5
        assert list(obj.gen(3)) == [0, 1, 2]

        async def collect():
            return [i async for i in obj.agen(3)]

        assert asyncio.run(collect()) == [0, 1, 2]
        with pytest.raises(KeyError):
            obj.fails("k")
        recs = records(obj)
        assert [r[0] for r in recs] == ["__call__", "coro", "gen", "agen", "fails"]
        assert [r[OUTCOME] for r in recs] == [None, None, None, None, "KeyError"]
        assert all(r[2] >= r[1] for r in recs)
    finally:
        stop(obj)


def test_generator_latency_covers_the_stream_and_early_close_is_recorded():
    M, obj = make()
    try:
        g = obj.gen(5)
        next(g)
        assert records(obj) == []  # nothing recorded until the stream ends
        g.close()
        (r,) = records(obj)
        assert r[OUTCOME] == "Cancelled"
    finally:
        stop(obj)


def test_sync_method_returning_a_generator_is_measured_to_the_end():
    class Lazy:
        def __call__(self, n):
            return (i for i in range(n))

    M, obj = make(Lazy, MonitorConfig(resources={"enabled": False}))
    try:
        out = obj(3)
        assert records(obj) == []
        assert list(out) == [0, 1, 2]
        assert len(records(obj)) == 1
    finally:
        stop(obj)


def test_serve_batch_is_still_recognised_as_a_method():
    from ray import serve

    class Batched:
        def __init__(self):
            self.sizes = []

        @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
        async def __call__(self, xs):
            self.sizes.append(len(xs))
            return [x * 2 for x in xs]

    M, obj = make(Batched, MonitorConfig(resources={"enabled": False}))
    try:
        inner = Batched.__call__.__wrapped__
        assert M.__call__.__wrapped__ is inner
        assert compat.batch_method_self((obj, 1), inner) is obj  # what Serve checks
        # (that batches still form in a real replica is tested in test_wrap_ray.py)
        assert hasattr(M.__call__, "set_max_batch_size")  # the batch wrapper's API is kept
    finally:
        stop(obj)


def test_feedback_route_on_a_sync_plain_handler_in_each_way_serve_calls_it():
    """A sync ``__call__(self, request)`` answers the route whether Serve runs it in anyio's
    thread pool (the default) or on the event loop; called any other way, it leaves the
    request to the user's code."""
    import json

    import anyio
    from starlette.requests import Request

    seen = []
    Actor = feedback_actor(seen)

    class Plain:
        def __call__(self, request):
            return "user"

    M = subclass.monitored_class(Plain, MonitorConfig(resources={"enabled": False}, capture={"feedback": True}))
    obj = M()
    obj.__dict__[MONITOR_ATTR].shipper.handle = Actor()

    def request(body):
        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        return Request({"type": "http", "path": "/app/-/raywatch/feedback", "method": "POST",
                        "headers": [], "query_string": b""}, receive)

    async def in_thread_pool(body):
        return await anyio.to_thread.run_sync(obj, request(body))

    async def on_the_loop(body):
        out = obj(request(body))
        return await out if inspect.iscoroutine(out) else out  # as Serve does for sync methods

    try:
        resp = asyncio.run(in_thread_pool(b'{"request_id": "r1", "label": 1}'))
        assert resp.status_code == 200 and json.loads(resp.body) == {"received": 1, "joined": 1}
        assert seen == [[("r1", 1, "default/Plain")]]
        resp = asyncio.run(on_the_loop(b'{"request_id": "r2", "label": 0}'))
        assert resp.status_code == 200 and seen[-1] == [("r2", 0, "default/Plain")]
        assert asyncio.run(in_thread_pool(b"[1]")).status_code == 400
        # no loop and no anyio worker thread: nowhere to read the body, so the user's code answers
        assert obj(request(b'{"request_id": "r3", "label": 1}')) == "user" and len(seen) == 2
        assert len(records(obj)) == 1  # only that call was a request to the model
    finally:
        stop(obj)
