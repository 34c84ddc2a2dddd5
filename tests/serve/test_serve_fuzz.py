"""The request path under hostile payloads through a real Serve deployment (issue 11): the
same deployment unwrapped and monitored, side by side, get the same hypothesis-generated
payloads — deep nesting, huge values, NaN/inf, bytes, cycles, odd keys, numpy object arrays —
at least 10,000 of them, most in lists of ``PER_REQUEST`` per request (``__call__``), some one
per request (``one``).

For every request: the monitored app answers exactly what the unwrapped one answers (the
same values, or the same user exception). After the run: the monitor counted no capture
error, every request reached the stats actor (ingested or reported dropped), what the
replica holds for the flusher fits the byte budget by its measure, and the monitored
replica's memory grew by no more than the unwrapped one's plus the budget (and some slack
for the allocator). The pure version, with 10 MB strings and 30,000-deep containers that
Ray's pickler refuses, is ``test_request_path_fuzz.py``."""

from __future__ import annotations

import uuid

import numpy as np
import psutil
import pytest
from hostile_payloads import canon, huge, payloads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rw_test_support import wait_until

from raywatch.stats.profile import Profile

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EXAMPLES = 400
PER_REQUEST = 20  # payloads in one __call__ request
SINGLES = 5       # payloads sent one per request (the method ``one``): 400 x 25 = 10,000
BUDGET = 4 << 20
SLACK = 96 << 20  # allocator and interpreter noise between two processes that got the same traffic
# what Ray's pickler takes (a 1 MB string, 200-deep containers); 30,000-deep JSON stays: it is text
SERVE_PAYLOADS = payloads(huge(big=1 << 20, depth=200))


def _outcome(call):
    """("ok", canon(answer)) or ("err", the user's exception type and args)."""
    try:
        return ("ok", canon(call()))
    except Exception as exc:  # noqa: BLE001 - Serve wraps the user's exception: compare that
        cause = getattr(exc, "cause", None) or exc
        return ("err", type(cause).__name__, canon(cause.args))


@pytest.fixture(scope="module")
def apps(ray_cluster, tmp_path_factory):
    import ray
    import ray.cloudpickle
    from ray import serve

    import fuzz_apps
    import hostile_payloads
    import raywatch

    for mod in (fuzz_apps, hostile_payloads):
        ray.cloudpickle.register_pickle_by_value(mod)
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("fuzz") / "reference.rwprofile"
    Profile.fit({"a": rng.normal(0, 1, 500), "b": rng.choice(["pro", "free", "75001"], 500),
                 "c": rng.random(500) > 0.5, "f0": rng.normal(0, 1, 500), "prediction": rng.random(500)}, seed=0).save(path)
    actor = {"name": f"rw-fuzz-{uuid.uuid4().hex[:8]}", "sqlite_path": None, "metrics_port": None}
    cfg = {"profile_path": str(path), "actor": actor, "resources": {"interval": 1},
           "capture": {"methods": ["__call__", "one"], "max_keys_per_row": 1000},
           "shipping": {"flush_interval": 0.2, "max_buffer_bytes": BUDGET}, "windows": {"length": 5}}
    bare = serve.run(fuzz_apps.Echo.bind(), name="fuzz-bare", route_prefix=None)
    mon = serve.run(raywatch.monitor(fuzz_apps.Echo, cfg).bind(), name="fuzz-mon", route_prefix=None)
    yield bare, mon, raywatch.MonitorConfig.model_validate(cfg)
    for name in ("fuzz-bare", "fuzz-mon"):
        serve.delete(name)
    try:
        ray.kill(ray.get_actor(actor["name"], namespace="raywatch"))
    except Exception:
        pass


def test_hostile_payloads_through_serve_answer_as_the_unwrapped_app(apps):
    import raywatch

    bare, mon, cfg = apps
    rss = {h: psutil.Process(h.pid.remote().result()) for h in (bare, mon)}
    rss0 = {h: p.memory_info().rss for h, p in rss.items()}
    sent = {"payloads": 0, "requests": 0, "errors": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(SERVE_PAYLOADS, min_size=PER_REQUEST, max_size=PER_REQUEST),
           st.lists(SERVE_PAYLOADS, min_size=SINGLES, max_size=SINGLES))
    def run(batch, singles):
        want = _outcome(lambda: bare.remote(batch).result(timeout_s=120))
        got = _outcome(lambda: mon.remote(batch).result(timeout_s=120))
        assert got == want and want[0] == "ok"
        for p in singles:
            want = _outcome(lambda: bare.one.remote(p).result(timeout_s=120))
            assert _outcome(lambda: mon.one.remote(p).result(timeout_s=120)) == want
            sent["errors"] += want[0] == "err"
        sent["payloads"] += len(batch) + len(singles)
        sent["requests"] += 1 + len(singles)

    run()
    # payloads the app raises on, sent whatever examples this hypothesis version drew
    for p in ({"boom": 1.0}, {"a": 2.0, "boom": "x", "prediction": 0.5}):
        want = _outcome(lambda: bare.one.remote(p).result(timeout_s=120))
        assert want[0] == "err" and _outcome(lambda: mon.one.remote(p).result(timeout_s=120)) == want
        sent["errors"] += 1
        sent["payloads"] += 1
        sent["requests"] += 1
    assert sent["payloads"] >= 10_000 and sent["errors"] > 0  # "boom" dicts raised, in both apps alike
    st_rep = mon._raywatch_status.remote().result()
    assert st_rep["capture_errors_total"] == 0 and st_rep["reload_errors"] == 0
    assert st_rep["payloads_dropped_total"].get("too_many_keys", 0) > 0  # the 5,000-key dict
    bound, size = st_rep["payload_bound"], st_rep["payload_bytes_estimate"]
    assert bound == 1 or bound * size <= BUDGET * 1.000001, (bound, size)

    def ingested():
        t = raywatch.status("fuzz-mon/Echo", config=cfg)["models"]["fuzz-mon/Echo"]["totals"]
        return t if t["requests"] + t["dropped"] == sent["requests"] else None

    totals = wait_until(ingested, timeout=60, interval=0.5, what="every monitored request ingested or reported dropped",
                        retry_errors=True)
    assert totals["capture_errors"] == 0
    growth = {h: p.memory_info().rss - rss0[h] for h, p in rss.items()}
    assert growth[mon] <= growth[bare] + BUDGET + SLACK, {"bare": growth[bare], "monitored": growth[mon]}
