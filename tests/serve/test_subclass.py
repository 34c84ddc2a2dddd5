"""The monitored subclass: ``__init__`` of the user's kind, ``reconfigure`` split between the
monitor and the user, a monitor that cannot start, no cluster outside Ray, and the destructor."""

import asyncio
import inspect

from monitored_helpers import (  # noqa: F401 (no_ray_transport is an autouse fixture)
    Model, make, no_ray_transport, records, stop, watched_cfg,
)

from raywatch.config import MonitorConfig
from raywatch.serve import subclass
from raywatch.serve import replica as replica_mod
from raywatch.serve.methods import MONITOR_ATTR


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
        assert obj() == 7 and len(records(obj)) == 1
    finally:
        stop(obj)


def test_reconfigure_splits_user_config():
    seen = []

    class WithReconf:
        def reconfigure(self, cfg):
            seen.append(cfg)

        def __call__(self):
            return 1

    M, obj = make(WithReconf, MonitorConfig(resources={"enabled": False}))
    try:
        mon = obj.__dict__[MONITOR_ATTR]
        obj.reconfigure({"threshold": 2, "raywatch": {"capture": {"sample_rate": 0.5}}})
        assert seen == [{"threshold": 2}]
        assert mon.capture.sample_rate == 0.5
        obj.reconfigure({"raywatch": {"capture": {"sample_rate": 0.5, "methods": ["other"]}}})
        obj()
        assert records(obj) == []  # __call__ no longer watched (narrowed at run time)
        obj.reconfigure({"raywatch": {"capture": {"sample_rate": 0.5}}})
        obj()
        assert len(records(obj)) == 1
        obj.reconfigure({"threshold": 3})  # no raywatch key: the monitor keeps its settings
        assert seen[-1] == {"threshold": 3} and mon.capture.sample_rate == 0.5
        # overrides apply to the config given to monitor(), not cumulatively
        obj.reconfigure({"raywatch": {"capture": {"fields": ["a"]}}})
        assert mon.capture.sample_rate == 1.0 and mon.config.capture.fields == ["a"]
    finally:
        stop(obj)

    class NoReconf:
        def __call__(self):
            return 1

    M, obj = make(NoReconf, MonitorConfig(resources={"enabled": False}))
    try:
        assert obj.reconfigure({"raywatch": {"capture": {"enabled": False}}}) is None
        obj()
        assert records(obj) == []
    finally:
        stop(obj)


def test_reconfigure_with_rank_and_async():
    got = []

    class Ranked:
        async def reconfigure(self, cfg, rank=None):
            got.append((cfg, rank))

        def __call__(self):
            return 1

    M, obj = make(Ranked, MonitorConfig(resources={"enabled": False}))
    try:
        assert "rank" in inspect.signature(M.reconfigure).parameters
        assert inspect.iscoroutinefunction(M.reconfigure)
        asyncio.run(obj.reconfigure({"a": 1, "raywatch": {}}, rank=3))
        assert got == [({"a": 1}, 3)]
    finally:
        stop(obj)


def test_monitor_failing_to_start_does_not_break_the_model(monkeypatch, caplog):
    def broken(*a, **k):
        raise RuntimeError("cannot start")

    monkeypatch.setattr(subclass, "ReplicaMonitor", broken)
    M = subclass.monitored_class(Model, watched_cfg())
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
        stop(obj)
    m2 = replica_mod.ReplicaMonitor(MonitorConfig(), Labels("a", "b", "c"))
    m2.capture.record("__call__", 0.0, None, None, (), {}, None)
    m2.tick()
    m2.stop(flush=False)
    assert m2.shipper.failures >= 1


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
