"""The request path under hostile payloads (issue 11): hypothesis generates at least 10,000
of them — deep nesting, huge values, NaN/inf, bytes, cycles, odd keys, numpy object arrays,
10 MB strings — and sends each through a monitored deployment's method wrapper (capture),
then the flusher's extraction and batch building (buffer), with no Ray.

For every payload: the monitored call answers exactly what the unwrapped call answers (the
same object, or the same exception), capture never fails, and no flush raises. For every
flush: every request is counted, the payloads held wait within the byte budget's bound,
and what the flush kept to summarize fits the budget by its measure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hostile_payloads import HUGE, PAYLOADS, Model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitored_helpers import no_ray_transport  # noqa: F401 (an autouse fixture)

from raywatch.config import MonitorConfig
from raywatch.serve import subclass
from raywatch.serve.buffer import estimate_bytes
from raywatch.serve.capture import ARGS
from raywatch.serve.methods import MONITOR_ATTR
from raywatch.stats.profile import Profile

pytestmark = pytest.mark.slow

EXAMPLES = 500
PER_EXAMPLE = 20  # payloads an example sends: 500 x 20 = 10,000
BUDGET = 4 << 20


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(0)
    return Profile.fit({"a": rng.normal(0, 1, 500), "b": rng.choice(["pro", "free", "75001"], 500),
                        "c": rng.random(500) > 0.5, "f0": rng.normal(0, 1, 500),
                        "prediction": rng.random(500)}, seed=0)


def _same(bare, monitored, payload):
    (ok_a, a), (ok_b, b) = bare, monitored
    if not ok_a:
        return not ok_b and type(a) is type(b) and a.args == b.args
    return ok_b and a.keys() == b.keys() and a["echo"] is payload and b["echo"] is payload


def _call(fn, payload):
    try:
        return True, fn(payload)
    except Exception as exc:  # noqa: BLE001 - the user's exception, compared below
        return False, exc


def test_hostile_payloads_never_reach_the_request_and_stay_bounded(profile):
    cfg = MonitorConfig(resources={"enabled": False}, capture={"max_keys_per_row": 1000},
                        shipping={"max_buffer_bytes": BUDGET, "flush_interval": 3600})
    monitored = subclass.monitored_class(Model, cfg)()
    mon = monitored.__dict__[MONITOR_ATTR]
    mon.stop(flush=False)  # the test drives the flushes itself
    mon.builder.profile = profile
    bare = Model()
    sent = {"payloads": 0, "requests_built": 0, "summarized": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(PAYLOADS, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def run(payloads):
        cap = mon.capture
        for p in payloads:
            assert _same(_call(bare, p), _call(monitored, p), p)
        sent["payloads"] += len(payloads)
        assert cap.errors == 0
        waiting = [r for r in cap.buffer if r[ARGS] is not None]
        assert len(waiting) <= max(cap.payload_bound, 0)
        batch = mon.tick()  # extraction, summaries, the batch: never raises
        assert batch is not None and batch.requests == len(payloads)
        sent["requests_built"] += batch.requests
        kept = mon.builder
        # the bound the request path keeps is the budget over the measured payload size
        assert cap.payload_bound == 1 or cap.payload_bound * kept.payload_bytes <= BUDGET * 1.000001
        if batch.summary is not None:
            sent["summarized"] += 1
        for name, types in batch.wrong_types.items():
            assert name in profile.columns and 1 <= len(types) <= 3

    run()
    assert sent["payloads"] >= 10_000 and sent["requests_built"] == sent["payloads"]
    assert sent["summarized"] > EXAMPLES // 2  # most flushes had rows for the profile
    assert mon.capture.errors == 0 and mon.reload_errors == 0
    assert mon.builder.capture_errors == 0  # no payload made extraction or a summary fail
    assert mon.builder.payloads_dropped.get("too_many_keys", 0) > 0  # the 5,000-key dict, each time
    assert mon.builder.payloads_dropped.get("byte_budget", 0) + mon.capture.payloads_dropped > 0  # the 10 MB strings
    assert mon.capture.dropped == 0 and mon.shipper.dropped_records >= 0
    assert math.isfinite(mon.builder.payload_bytes)
    assert estimate_bytes(HUGE[0]) >= 10 << 20
