"""The method wrappers, the ASGI tee and the monitored subclass, without a Ray cluster.

A recording transport replaces Ray; Ray Serve is imported (for ``@serve.batch`` and the
``Deployment`` type) but no cluster is started."""

import asyncio
import inspect

import pytest

from raywatch.config import MonitorConfig
from raywatch.serve import compat, subclass
from raywatch.serve import replica as replica_mod
from raywatch.serve.capture import OUTCOME, STATUS
from raywatch.serve.methods import MONITOR_ATTR


class NullTransport:
    def resolve(self):
        raise LookupError("no actor in unit tests")


@pytest.fixture(autouse=True)
def no_ray_transport(monkeypatch):
    orig = replica_mod.ReplicaMonitor.__init__

    def init(self, config, labels, **kw):
        kw.setdefault("transport", NullTransport())
        orig(self, config, labels, **kw)

    monkeypatch.setattr(replica_mod.ReplicaMonitor, "__init__", init)


def _cfg(**capture):
    return MonitorConfig(resources={"enabled": False}, capture={"methods": ["__call__", "agen", "gen", "coro", "fails"], **capture})


class Model:
    def __init__(self, k=1):
        self.k = k

    def __call__(self, x):
        return x * self.k

    async def coro(self, x):
        return x + self.k

    def gen(self, n):
        yield from range(n)

    async def agen(self, n):
        for i in range(n):
            yield i

    def fails(self, x):
        raise KeyError(x)


def _stop(obj):
    mon = obj.__dict__.pop(MONITOR_ATTR, None)
    if mon is not None:
        mon.stop(flush=False)


def _records(obj):
    mon = obj.__dict__[MONITOR_ATTR]
    return mon.capture.drain()


def _make(cls=Model, cfg=None, *args):
    M = subclass.monitored_class(cls, cfg or _cfg())
    obj = M(*args)
    return M, obj


def _ingress(app):
    """A class like ``@serve.ingress`` makes (Serve's ASGI replica wrapper) around ``app``."""
    class Ingress(compat.asgi_wrapper_class()):
        def __init__(self):
            self._asgi_app = app

        def __del__(self):  # (Ray's is async: un-awaited when garbage-collected in a test)
            pass

    return Ingress


def test_kinds_are_preserved_and_results_unchanged():
    M, obj = _make(Model, None, 3)
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
        recs = _records(obj)
        assert [r[0] for r in recs] == ["__call__", "coro", "gen", "agen", "fails"]
        assert [r[OUTCOME] for r in recs] == [None, None, None, None, "KeyError"]
        assert all(r[2] >= r[1] for r in recs)
    finally:
        _stop(obj)


def test_generator_latency_covers_the_stream_and_early_close_is_recorded():
    M, obj = _make()
    try:
        g = obj.gen(5)
        next(g)
        assert _records(obj) == []  # nothing recorded until the stream ends
        g.close()
        (r,) = _records(obj)
        assert r[OUTCOME] == "Cancelled"
    finally:
        _stop(obj)


def test_sync_method_returning_a_generator_is_measured_to_the_end():
    class Lazy:
        def __call__(self, n):
            return (i for i in range(n))

    M, obj = _make(Lazy, MonitorConfig(resources={"enabled": False}))
    try:
        out = obj(3)
        assert _records(obj) == []
        assert list(out) == [0, 1, 2]
        assert len(_records(obj)) == 1
    finally:
        _stop(obj)


def test_serve_batch_is_still_recognised_as_a_method():
    from ray import serve

    class Batched:
        def __init__(self):
            self.sizes = []

        @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
        async def __call__(self, xs):
            self.sizes.append(len(xs))
            return [x * 2 for x in xs]

    M, obj = _make(Batched, MonitorConfig(resources={"enabled": False}))
    try:
        inner = Batched.__call__.__wrapped__
        assert M.__call__.__wrapped__ is inner
        assert compat.batch_method_self((obj, 1), inner) is obj  # what Serve checks
        # (that batches still form in a real replica is tested in test_wrap_ray.py)
        assert hasattr(M.__call__, "set_max_batch_size")  # the batch wrapper's API is kept
    finally:
        _stop(obj)


def test_async_init_kept_async():
    class AsyncInit:
        async def __init__(self, v):
            self.v = v

        def __call__(self):
            return self.v

    M = subclass.monitored_class(AsyncInit, MonitorConfig(resources={"enabled": False}))
    assert inspect.iscoroutinefunction(M.__init__)
    obj = M.__new__(M)
    asyncio.run(obj.__init__(7))
    try:
        assert obj() == 7 and len(_records(obj)) == 1
    finally:
        _stop(obj)


def test_reconfigure_splits_user_config():
    seen = []

    class WithReconf:
        def reconfigure(self, cfg):
            seen.append(cfg)

        def __call__(self):
            return 1

    M, obj = _make(WithReconf, MonitorConfig(resources={"enabled": False}))
    try:
        mon = obj.__dict__[MONITOR_ATTR]
        obj.reconfigure({"threshold": 2, "raywatch": {"capture": {"sample_rate": 0.5}}})
        assert seen == [{"threshold": 2}]
        assert mon.capture.sample_rate == 0.5
        obj.reconfigure({"raywatch": {"capture": {"sample_rate": 0.5, "methods": ["other"]}}})
        obj()
        assert _records(obj) == []  # __call__ no longer watched (narrowed at run time)
        obj.reconfigure({"raywatch": {"capture": {"sample_rate": 0.5}}})
        obj()
        assert len(_records(obj)) == 1
        obj.reconfigure({"threshold": 3})  # no raywatch key: the monitor keeps its settings
        assert seen[-1] == {"threshold": 3} and mon.capture.sample_rate == 0.5
        # overrides apply to the config given to monitor(), not cumulatively
        obj.reconfigure({"raywatch": {"capture": {"fields": ["a"]}}})
        assert mon.capture.sample_rate == 1.0 and mon.config.capture.fields == ["a"]
    finally:
        _stop(obj)

    class NoReconf:
        def __call__(self):
            return 1

    M, obj = _make(NoReconf, MonitorConfig(resources={"enabled": False}))
    try:
        assert obj.reconfigure({"raywatch": {"capture": {"enabled": False}}}) is None
        obj()
        assert _records(obj) == []
    finally:
        _stop(obj)


def test_reconfigure_with_rank_and_async():
    got = []

    class Ranked:
        async def reconfigure(self, cfg, rank=None):
            got.append((cfg, rank))

        def __call__(self):
            return 1

    M, obj = _make(Ranked, MonitorConfig(resources={"enabled": False}))
    try:
        assert "rank" in inspect.signature(M.reconfigure).parameters
        assert inspect.iscoroutinefunction(M.reconfigure)
        asyncio.run(obj.reconfigure({"a": 1, "raywatch": {}}, rank=3))
        assert got == [({"a": 1}, 3)]
    finally:
        _stop(obj)


def test_asgi_call_captures_status_route_and_tees_body():
    class Route:
        path = "/items/{id}"

    async def app(scope, receive, send):
        msg = await receive()
        assert msg["body"] == b'{"amount": 5}'  # the app still gets the whole body
        scope["route"] = Route()
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"prediction": 1}'})

    M, obj = _make(_ingress(app), MonitorConfig(resources={"enabled": False}))
    sent = []

    async def receive():
        return {"type": "http.request", "body": b'{"amount": 5}', "more_body": False}

    async def send(msg):
        sent.append(msg)

    try:
        asyncio.run(obj({"type": "http", "query_string": b""}, receive, send))
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        (r,) = _records(obj)
        assert r[STATUS] == 201 and r[9] == "/items/{id}"
        mon = obj.__dict__[MONITOR_ATTR]
        assert mon.builder.extractor.features(r[6], r[7]) == [{"amount": 5}]
        assert mon.builder.extractor.predictions(r[8]) == [{"prediction": 1}]
    finally:
        _stop(obj)


def test_monitor_keeps_name_and_options_and_refuses_double_wrap():
    from ray import serve

    import raywatch

    @serve.deployment(num_replicas=3, max_ongoing_requests=7, user_config={"a": 1})
    class Clf:
        def __call__(self, x):
            return x

    d = raywatch.monitor(Clf, {"model": "clf"}, capture={"sample_rate": 0.5})
    assert d.name == "Clf" and d.num_replicas == 3 and d.max_ongoing_requests == 7 and d.user_config == {"a": 1}
    assert d.func_or_class._raywatch_config.capture.sample_rate == 0.5
    assert d.func_or_class._raywatch_config.model == "clf"
    with pytest.raises(TypeError, match="already monitored"):
        raywatch.monitor(d)

    class Plain:
        def __call__(self):
            return 1

    assert raywatch.monitor(Plain).name == "Plain"

    def fn(x):
        return x

    f = raywatch.monitor(fn)
    assert f.name == "fn"
    obj = f.func_or_class()
    try:
        assert obj(4) == 4
    finally:
        _stop(obj)
    from raywatch.config import ConfigError

    with pytest.raises(ConfigError, match="sample_rate"):
        raywatch.monitor(Plain, capture={"sample_rate": 3})


def test_monitor_failing_to_start_does_not_break_the_model(monkeypatch, caplog):
    def broken(*a, **k):
        raise RuntimeError("cannot start")

    monkeypatch.setattr(subclass, "ReplicaMonitor", broken)
    M = subclass.monitored_class(Model, _cfg())
    obj = M(2)
    assert obj(3) == 6 and list(obj.gen(2)) == [0, 1]
    assert "could not start" in caplog.text


def test_outside_ray_nothing_starts_a_cluster(monkeypatch):
    import ray

    from raywatch.serve.buffer import Labels

    monkeypatch.undo()  # the real transport this time
    # whether or not another test left a cluster running in this session: the monitor must
    # neither start one nor look for one when Ray is not initialised in its process
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def no_init(*a, **k):
        raise AssertionError("the monitor tried to start Ray")

    monkeypatch.setattr(ray, "init", no_init)
    M = subclass.monitored_class(Model, MonitorConfig(resources={"enabled": True}))
    obj = M(1)
    try:
        obj(1)
        mon = obj.__dict__[MONITOR_ATTR]
        mon.tick()
        assert mon.shipper.failures >= 1 and mon.shipper.handle is None
        assert mon.labels.node_id is None and mon.labels.app == "default"
    finally:
        _stop(obj)
    m2 = replica_mod.ReplicaMonitor(MonitorConfig(), Labels("a", "b", "c"))
    m2.capture.record("__call__", 0.0, None, None, (), {}, None)
    m2.tick()
    m2.stop(flush=False)
    assert m2.shipper.failures >= 1


def _asgi_instance(cfg):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"prediction": 0}'})

    M = subclass.monitored_class(_ingress(app), cfg)
    return M()


async def _receive():
    return {"type": "http.request", "body": b'{"a": 1}', "more_body": False}


async def _send(msg):
    pass


def test_asgi_sampling_is_decided_once():
    obj = _asgi_instance(MonitorConfig(resources={"enabled": False}, capture={"sample_rate": 0.5},
                                       shipping={"flush_interval": 3600, "flush_max_records": 100_000}))
    try:
        async def many():
            for _ in range(2000):
                await obj({"type": "http", "query_string": b""}, _receive, _send)

        asyncio.run(many())
        recs = _records(obj)
        assert len(recs) == 2000
        kept = sum(r[6] is not None for r in recs)
        assert 850 < kept < 1150  # ~50 %, not 25 % (sampled twice) — binomial sd is ~22
        assert all((r[6] is None) == (r[8] is None) for r in recs)
    finally:
        _stop(obj)


def test_asgi_feedback_keeps_predictions_of_unsampled_requests():
    obj = _asgi_instance(MonitorConfig(resources={"enabled": False}, capture={"sample_rate": 0.0, "feedback": True}))
    try:
        asyncio.run(obj({"type": "http", "query_string": b""}, _receive, _send))
        (r,) = _records(obj)
        assert r[6] is None and r[8] == b'{"prediction": 0}'
    finally:
        _stop(obj)


def test_destructor_flushes_and_keeps_the_users():
    calls = []

    class SyncDel:
        def __call__(self):
            return 1

        def __del__(self):
            calls.append("sync")

    class AsyncDel:
        def __call__(self):
            return 1

        async def __del__(self):
            calls.append("async")

    M = subclass.monitored_class(SyncDel, MonitorConfig(resources={"enabled": False}))
    obj = M()
    mon = obj.__dict__[MONITOR_ATTR]
    obj()
    mon.shipper.drain = lambda **k: True  # nothing to ship to in a unit test
    obj.__del__()
    assert calls == ["sync"] and MONITOR_ATTR not in obj.__dict__
    assert not mon.status()["running"] and mon.builder.seq == 1  # the last records were built into a batch

    A = subclass.monitored_class(AsyncDel, MonitorConfig(resources={"enabled": False}))
    assert not inspect.iscoroutinefunction(A.__del__)
    a = A()
    a.__dict__[MONITOR_ATTR].shipper.drain = lambda **k: True
    pending = a.__del__()  # Serve awaits the coroutine a sync __del__ returns
    assert MONITOR_ATTR not in a.__dict__ and inspect.iscoroutine(pending)
    asyncio.run(pending)
    assert calls[-1] == "async"
    A.__del__ = lambda self: None  # nothing left for the garbage collector to call


def _feedback_actor(seen):
    """A stats-actor double whose ``feedback_many.remote`` records the items it is given."""

    class Actor:
        class feedback_many:
            @staticmethod
            def remote(items):
                seen.append(items)

                async def done():
                    return {"joined": len(items)}

                return done()

    return Actor


def test_feedback_route_answers_without_the_users_code():
    import json

    seen = []
    Actor = _feedback_actor(seen)

    obj = _asgi_instance(MonitorConfig(resources={"enabled": False}, capture={"feedback": True}))
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
        assert call(b'[{"request_id": "r2", "label": 0, "model": "a/B"}]')[0] == 200 and seen[-1] == [("r2", 0, "a/B")]
        status, answer = call(b"not json")
        assert status == 400 and "JSON" in answer["error"]
        assert call(b'{"label": 1}')[0] == 400
        # other paths and methods reach the user's app, which is not called for feedback
        assert call(b"{}", path="/app/predict") == (200, {"prediction": 0})
        assert call(b"{}", method="GET")[0] == 200 and len(seen) == 2
        recs = _records(obj)
        assert len(recs) == 2 and all(r[STATUS] == 200 for r in recs)  # feedback posts are not requests
        mon.shipper.handle = None
        mon.transport.resolve = lambda: (_ for _ in ()).throw(LookupError("no actor"))
        assert call(b'{"request_id": "r3", "label": 1}')[0] == 503
    finally:
        _stop(obj)
    off = _asgi_instance(MonitorConfig(resources={"enabled": False}))  # feedback off: no route
    try:
        sent.clear()

        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        asyncio.run(off({"type": "http", "path": "/-/raywatch/feedback", "method": "POST", "query_string": b""}, receive, send))
        assert sent[1]["body"] == b'{"prediction": 0}'
    finally:
        _stop(off)


def test_feedback_route_on_a_sync_plain_handler_in_each_way_serve_calls_it():
    """A sync ``__call__(self, request)`` answers the route whether Serve runs it in anyio's
    thread pool (the default) or on the event loop; called any other way, it leaves the
    request to the user's code."""
    import json

    import anyio
    from starlette.requests import Request

    seen = []
    Actor = _feedback_actor(seen)

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
        assert len(_records(obj)) == 1  # only that call was a request to the model
    finally:
        _stop(obj)
