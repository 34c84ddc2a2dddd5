"""Helpers for the alerting tests (imported by name; conftest modules are not importable)."""

from __future__ import annotations

import sys
from pathlib import Path

# the local receivers live with the sink tests
_SINKS = str(Path(__file__).resolve().parents[1] / "sinks")
if _SINKS not in sys.path:
    sys.path.insert(0, _SINKS)

import pytest  # noqa: E402

from sink_fixtures import receiver  # noqa: E402,F401  (fixture, shared with the sink tests)
from raywatch.sinks.base import Sink  # noqa: E402


class RecordingSink(Sink):
    """A sink that records what it is given (for routing tests driven with explicit time)."""

    type = "webhook"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.got = []

    def send(self, notification):
        self.got.append(notification)


class DirectRecordingSink(RecordingSink):
    """Records like RecordingSink, but receives every alert directly (as the alertmanager sink)."""

    direct = True


def stepped():
    """An :class:`AlertEngine` for tests that drive time explicitly (``background=False``):
    before each step (evaluate, tick, resolve_all) it waits until the previous steps'
    notifications have been handled, as the seconds between two real evaluations would let
    them. Without this, a flush "60 s later" runs microseconds later, before the receiver
    could accept anything, and supersedes what is on its way (as it should in real time)."""
    from raywatch.alerts import AlertEngine

    class SteppedEngine(AlertEngine):
        def evaluate(self, series, now=None):
            assert self.wait_idle(10)
            return super().evaluate(series, now)

        def tick(self, now=None):
            assert self.wait_idle(10)
            return super().tick(now)

        def resolve_all(self, reason="", now=None):
            assert self.wait_idle(10)
            return super().resolve_all(reason, now)

    return SteppedEngine


def got(engine, name):
    """Notifications a recording sink received, once the queue has drained."""
    assert engine.wait_idle(5)
    return engine.sinks[name].got


def quiet(cfg):
    """``cfg`` (a mapping) without the Watchdog, for tests about other alerts (the Watchdog,
    on by default, would add its own notification to every receiver)."""
    return dict(cfg, watchdog=cfg.get("watchdog", False))


@pytest.fixture
def make_engine():
    """Build engines that are always closed; sinks of type log are replaced by recorders.
    The Watchdog is off unless the config sets ``watchdog`` (see :func:`quiet`)."""
    from prometheus_client import CollectorRegistry

    from raywatch.alerts import AlertEngine
    from raywatch.config import AlertingConfig

    engines = []

    def make(cfg, *, background=False, record=True, **kw):
        cfg = AlertingConfig.model_validate(quiet(cfg)) if isinstance(cfg, dict) else cfg
        sinks = {s.name: RecordingSink(s) for s in cfg.sinks if s.type == "log"} if record else None
        kind = AlertEngine if background else stepped()
        e = kind.from_config(cfg, registry=CollectorRegistry(), background=background, sinks=sinks, **kw)
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.close(timeout=2)
