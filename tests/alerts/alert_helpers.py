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


def got(engine, name):
    """Notifications a recording sink received, once the queue has drained."""
    assert engine.wait_idle(5)
    return engine.sinks[name].got


@pytest.fixture
def make_engine():
    """Build engines that are always closed; sinks of type log are replaced by recorders."""
    from prometheus_client import CollectorRegistry

    from raywatch.alerts import AlertEngine
    from raywatch.config import AlertingConfig

    engines = []

    def make(cfg, *, background=False, record=True, **kw):
        cfg = AlertingConfig.model_validate(cfg) if isinstance(cfg, dict) else cfg
        sinks = {s.name: RecordingSink(s) for s in cfg.sinks if s.type == "log"} if record else None
        e = AlertEngine.from_config(cfg, registry=CollectorRegistry(), background=background, sinks=sinks, **kw)
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.close(timeout=2)
