"""Shared by the serve unit tests of the monitored class: a transport that reaches no
actor (an autouse fixture puts it in every ReplicaMonitor), a model with every method kind,
an ingress class around an ASGI app, and a stats-actor double for the feedback route.
Ray Serve is imported (for ``@serve.batch`` and the ``Deployment`` type); no cluster starts."""

import pytest

from raywatch.config import MonitorConfig
from raywatch.serve import compat, subclass
from raywatch.serve import replica as replica_mod
from raywatch.serve.methods import MONITOR_ATTR

__all__ = ["NullTransport", "no_ray_transport", "watched_cfg", "Model", "stop", "records", "make", "ingress",
           "asgi_instance", "one_json_request", "ignore_send", "feedback_actor"]


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


def watched_cfg(**capture):
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


def stop(obj):
    mon = obj.__dict__.pop(MONITOR_ATTR, None)
    if mon is not None:
        mon.stop(flush=False)


def records(obj):
    mon = obj.__dict__[MONITOR_ATTR]
    return mon.capture.drain()


def make(cls=Model, cfg=None, *args):
    M = subclass.monitored_class(cls, cfg or watched_cfg())
    obj = M(*args)
    return M, obj


def ingress(app):
    """A class like ``@serve.ingress`` makes (Serve's ASGI replica wrapper) around ``app``."""
    class Ingress(compat.asgi_wrapper_class()):
        def __init__(self):
            self._asgi_app = app

        def __del__(self):  # (Ray's is async: un-awaited when garbage-collected in a test)
            pass

    return Ingress


def asgi_instance(cfg):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"prediction": 0}'})

    M = subclass.monitored_class(ingress(app), cfg)
    return M()


async def one_json_request():
    return {"type": "http.request", "body": b'{"a": 1}', "more_body": False}


async def ignore_send(msg):
    pass


def feedback_actor(seen):
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
