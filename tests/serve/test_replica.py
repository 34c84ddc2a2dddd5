import time

import numpy as np
import pytest

from raywatch.config import MonitorConfig
from raywatch.serve.buffer import Labels
from raywatch.serve.replica import ReplicaMonitor
from raywatch.stats.profile import Profile
from raywatch.stats.summary import WindowSummary


class Recorder:
    """Transport double: ingest succeeds immediately; remembers batches and calls."""

    def __init__(self, profile_bytes=None):
        self.batches = []
        self.calls = []
        self.profile_bytes = profile_bytes

    def resolve(self):
        return "actor"

    def send(self, handle, batch):
        self.batches.append(batch)
        return ("ingest", len(self.batches))

    def done(self, refs):
        return list(refs)

    def check(self, ref):
        return None

    def call(self, handle, method, *args):
        self.calls.append((method, args))
        return (method, args)

    def value(self, ref):
        return self.profile_bytes if ref[0] == "get_profile" else None


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(1)
    return Profile.fit({"a": rng.normal(0, 1, 500), "prediction": rng.integers(0, 2, 500)})


def _mon(cfg=None, **kw):
    cfg = cfg or MonitorConfig(resources={"enabled": False})
    return ReplicaMonitor(cfg, Labels("app", "Dep", "rep-1"), **kw)


def _requests(mon, n, payload=None):
    for i in range(n):
        t0 = time.perf_counter()
        mon.capture.record("__call__", t0, None, None, (payload or {"a": 0.1 * i},), {}, i % 2)


def test_tick_ships_one_batch_per_flush_and_registers(profile):
    tr = Recorder()
    mon = _mon(transport=tr, profile=profile)
    _requests(mon, 25)
    mon.tick()
    assert len(tr.batches) == 1
    b = tr.batches[0]
    assert b.requests == 25 and b.model_key == "app/Dep"
    assert WindowSummary.from_bytes(b.summary).rows == 25
    method, args = tr.calls[0]
    assert method == "register_model" and args[0] == "app/Dep"
    assert isinstance(args[1], MonitorConfig) and args[2] == profile.to_bytes()
    mon.tick()
    assert len(tr.batches) == 1  # nothing new: no empty batch


def test_drops_reach_the_actor_in_the_next_batch():
    tr = Recorder()
    cfg = MonitorConfig(resources={"enabled": False}, shipping={"buffer_size": 10})
    mon = _mon(cfg, transport=tr)
    _requests(mon, 15)
    mon.tick()
    assert tr.batches[-1].requests == 10 and tr.batches[-1].dropped_total == 5
    mon.tick()  # counters unchanged: nothing to send
    assert len(tr.batches) == 1


class Failing(Recorder):
    """The actor answers nothing but failures until ``healthy`` (then "ok")."""

    healthy = False

    def check(self, ref):
        if not self.healthy:
            raise RuntimeError("the actor died")
        return "ok"


def test_an_abandoned_batch_reaches_the_actor_even_when_no_request_comes():
    tr = Failing()
    cfg = MonitorConfig(resources={"enabled": False},
                        shipping={"max_retries": 0, "retry_backoff": 0.001, "max_backoff": 0.001})
    mon = _mon(cfg, transport=tr)
    _requests(mon, 6)
    mon.tick()  # sent; the call fails
    mon.tick()  # given up on: abandoned (it may have been stored)
    assert mon.shipper.abandoned == {tr.batches[0].seq: 6}
    assert tr.batches[0].dropped_total == 0
    tr.healthy = True
    deadline = time.monotonic() + 5
    while mon.shipper.abandoned and time.monotonic() < deadline:  # the backoff is 1 ms
        mon.tick()
    told = tr.batches[-1]
    assert told.requests == 0 and told.abandoned == [[tr.batches[0].seq, 6]]
    assert told.dropped_total == 0  # not counted twice: the actor decides from the seq
    n = len(tr.batches)
    mon.tick()
    assert len(tr.batches) == n  # heard: nothing more to tell


def test_profile_fetched_from_actor(profile):
    tr = Recorder(profile_bytes=profile.to_bytes())
    mon = _mon(transport=tr)
    mon.tick()  # connects (lazily, when there is something to send) ...
    _requests(mon, 3)
    mon.tick()  # ... asks for the profile
    mon.tick()  # ... receives it
    assert mon.status()["profile"] == "actor"
    _requests(mon, 4)
    mon.tick()
    assert WindowSummary.from_bytes(tr.batches[-1].summary).rows == 4


def test_profile_path(tmp_path, profile):
    path = tmp_path / "ref.profile"
    profile.save(path)
    tr = Recorder()
    mon = _mon(MonitorConfig(resources={"enabled": False}, profile_path=str(path)), transport=tr)
    _requests(mon, 2)
    mon.tick()
    assert tr.calls[0][1][2] is not None
    assert mon.status()["profile"] == "path"


def test_reconfigure_in_place_and_bad_override_kept_out(profile):
    tr = Recorder()
    mon = _mon(transport=tr, profile=profile)
    cap = mon.capture
    assert mon.reconfigure({"capture": {"sample_rate": 0.0}, "drift": {"alpha": 0.01}})
    assert mon.capture is cap and cap.sample_rate == 0.0
    assert mon.config.drift.alpha == 0.01
    _requests(mon, 5)
    mon.tick()
    assert tr.batches[-1].requests == 5 and tr.batches[-1].summary is None  # nothing sampled
    # re-registered with the new config
    assert tr.calls[-1][0] == "register_model" and tr.calls[-1][1][1].drift.alpha == 0.01
    assert not mon.reconfigure({"capture": {"sample_rate": 7}})
    assert not mon.reconfigure({"capture": {"feature_extractor": "no_such_module_xyz:f"}})
    assert cap.sample_rate == 0.0 and mon.reload_errors == 2
    assert mon.status()["capture_errors_total"] == 2


def test_flusher_thread_flushes_and_stop_ships_the_rest():
    tr = Recorder()
    cfg = MonitorConfig(resources={"enabled": True, "interval": 60}, shipping={"flush_interval": 0.05, "flush_max_records": 5})
    mon = _mon(cfg, transport=tr).start()
    try:
        _requests(mon, 5)
        deadline = time.time() + 5
        while not any(b.requests for b in tr.batches) and time.time() < deadline:
            time.sleep(0.01)
        assert sum(b.requests for b in tr.batches) == 5
        assert tr.batches[0].resources["rss_bytes"] > 0
    finally:
        _requests(mon, 3)
        mon.stop(flush=True)
    assert sum(b.requests for b in tr.batches) == 8
    st = mon.status()
    assert not st["running"]
    assert st["records_drained"] == 8 and st["flusher_cpu_s"] > 0  # the flusher's own CPU, counted


def test_light_load_flushes_wait_for_more_records_up_to_max_wait():
    """Under light load a flush waits for ``flush_min_records`` (its fixed cost then falls on
    more records), at most ``flush_max_wait``; a wake-up, a full batch and a window boundary
    flush at once."""
    cfg = MonitorConfig(resources={"enabled": False}, windows={"length": 3600},
                        shipping={"flush_interval": 1, "flush_min_records": 10, "flush_max_wait": 3})
    mon = _mon(cfg, transport=Recorder())
    t = mon._flushed_at
    _requests(mon, 9)
    assert not mon._due(False, t + 1) and not mon._due(False, t + 2.9)
    assert mon._due(False, t + 3)  # the longest wait
    assert mon._due(True, t + 0.5)  # woken: flush_max_records or the byte budget
    _requests(mon, 1)
    assert mon._due(False, t + 1)  # enough records
    mon.tick()
    assert not mon._due(False, mon._flushed_at + 1)
    # the default longest wait is 4 flush intervals
    mon.config = MonitorConfig(resources={"enabled": False}, windows={"length": 3600}, shipping={"flush_interval": 0.5})
    assert not mon._due(False, mon._flushed_at + 1.9) and mon._due(False, mon._flushed_at + 2.0)
    # a window boundary since the last flush: flush now, so a batch stays within its window
    mon.config = MonitorConfig(resources={"enabled": False}, windows={"length": 1e-3},
                               shipping={"flush_interval": 1, "flush_max_wait": 3600})
    time.sleep(0.002)
    assert mon._due(False, mon._flushed_at + 0.01)


def test_waiting_flusher_wakes_just_before_a_window_boundary():
    """A waiting flusher's tick lands 50 ms before each window boundary and flushes there,
    so no batch straddles a boundary (the stats actor files a batch by its last record)."""
    cfg = MonitorConfig(resources={"enabled": False}, windows={"length": 10},
                        shipping={"flush_interval": 1, "flush_max_wait": 3600})
    mon = _mon(cfg, transport=Recorder())
    boundary = 1_000_000_010.0
    assert mon._timeout(boundary - 5) == 1
    assert mon._timeout(boundary - 0.5) == pytest.approx(0.45)
    assert mon._timeout(boundary - 0.05) == pytest.approx(1)  # (a tick that already landed)
    landed = boundary - 0.05
    mono = landed - mon._epoch
    mon._flushed_at = mono - 2
    assert mon._due(False, mono)  # the last tick of the window flushes
    mon._flushed_at = mono
    assert not mon._due(False, mono + 0.9)  # the next one, just after the boundary, waits
    assert mon._due(False, mono + 10)  # and the next window's last tick flushes again


def test_flusher_thread_defers_small_flushes():
    tr = Recorder()
    cfg = MonitorConfig(resources={"enabled": False}, windows={"length": 3600},
                        shipping={"flush_interval": 0.02, "flush_min_records": 1000, "flush_max_wait": 0.2})
    mon = _mon(cfg, transport=tr).start()
    try:
        _requests(mon, 3)
        deadline = time.time() + 5
        while not tr.batches and time.time() < deadline:
            time.sleep(0.01)
        assert sum(b.requests for b in tr.batches) == 3
        st = mon.status()
        assert st["flushes_deferred"] >= 1 and st["flushes"] >= 1
    finally:
        mon.stop(flush=True)


def test_status_config_is_json_able_with_callables_and_no_resolved_secret(monkeypatch):
    import json

    monkeypatch.setenv("RW_TEST_HOOK", "https://hooks.example/s3cr3t")
    cfg = MonitorConfig(resources={"enabled": False}, capture={"feature_extractor": len},
                        alerting={"sinks": [{"name": "hook", "type": "webhook", "url": "${RW_TEST_HOOK}"},
                                            {"name": "lit", "type": "webhook", "url": "https://hooks.example/literal"}]})
    mon = _mon(cfg, transport=Recorder())
    d = mon.status()["config"]
    text = json.dumps(d)
    assert d["capture"]["feature_extractor"] == "builtins:len"
    assert [s["url"] for s in d["alerting"]["sinks"]] == ["${RW_TEST_HOOK}", "**********"]
    assert "s3cr3t" not in text and "literal" not in text


def test_payloads_held_between_flushes_fit_the_byte_budget(profile):
    """200 sampled 1 MB payloads used to be held whole (200 MB). The request path keeps at
    most ``payload_bound`` of them; the flusher measures their size and sets the bound from
    ``shipping.max_buffer_bytes``; the rest are counted, and the requests all are."""
    from raywatch.serve.buffer import estimate_bytes
    from raywatch.serve.capture import ARGS

    tr = Recorder()
    cfg = MonitorConfig(resources={"enabled": False}, shipping={"max_buffer_bytes": 16 << 20})
    mon = _mon(cfg, transport=tr, profile=profile)
    blob = "x" * (1 << 20)

    def send(n):
        for i in range(n):
            mon.capture.record("__call__", time.perf_counter(), None, None, ({"a": 0.5, "blob": blob + str(i)},), {}, 1)

    def held():
        return sum(estimate_bytes(r[ARGS]) for r in list(mon.capture.buffer) if r[ARGS] is not None)

    assert mon.capture.payload_bound == 16  # until measured: 1 MiB a payload is assumed
    send(200)
    assert sum(r[ARGS] is not None for r in mon.capture.buffer) == 16 and mon.capture.wake.is_set()
    assert held() <= 1.01 * (16 << 20)  # (these are 1 MiB and a few hundred bytes)
    mon.tick()
    assert mon.capture.payload_bound == 15 and mon.capture.flush_at == 7  # measured: a bit over 1 MiB each
    send(200)
    assert held() <= 16 << 20
    mon.tick()
    requests = sum(b.requests for b in tr.batches)
    assert requests == 400 and tr.batches[-1].dropped_total == 0
    rows = sum(WindowSummary.from_bytes(b.summary).rows for b in tr.batches)
    # 16 held, of which the flush kept 15 (16 payloads of a bit over 1 MiB are over 16 MiB), then 15
    assert tr.batches[-1].payloads_dropped_total == {"byte_budget": 400 - rows} and rows == 30
    assert mon.status()["payloads_dropped_total"] == {"byte_budget": 370}
    # small payloads again (~500 bytes): the bound grows back within a few flushes
    for _ in range(6):
        _requests(mon, 20)
        mon.tick()
    assert mon.builder.payload_bytes < 1000 and mon.capture.payload_bound > 16_000
    assert mon.capture.flush_at == cfg.shipping.flush_max_records


def test_an_unreadable_profile_is_named_in_every_batch(tmp_path):
    tr = Recorder()
    cfg = MonitorConfig(resources={"enabled": False}, profile_path=str(tmp_path / "nope.profile"), profile_required=False)
    mon = _mon(cfg, transport=tr)
    _requests(mon, 3)
    mon.tick()
    (b,) = tr.batches
    assert b.summary is None and "nope.profile" in b.profile_error and "No such file" in b.profile_error
    assert mon.status()["profile_error"] == b.profile_error


def test_a_signed_profile_file_reaches_the_actor_signed(profile, tmp_path):
    """Found by the secret-canary test (tests/faults): with ``actor.profile_key`` set, the
    replica registered ``Profile.to_bytes()`` — the signature stripped — so the actor refused
    every profile read from a signed file. The file's own bytes are registered now."""
    from raywatch.stats import signing

    key = "k3y-for-profiles"
    path = tmp_path / "signed.rwprofile"
    path.write_bytes(profile.sign(key))
    tr = Recorder()
    mon = _mon(MonitorConfig(profile_path=str(path), resources={"enabled": False}), transport=tr)
    assert mon.builder.profile.fingerprint == profile.fingerprint
    _requests(mon, 3)
    mon.tick()
    (method, args), = [c for c in tr.calls if c[0] == "register_model"]
    assert signing.verify(args[2], key) == profile.to_bytes()
    unsigned = tmp_path / "plain.rwprofile"
    profile.save(unsigned)
    tr2 = Recorder()
    mon2 = _mon(MonitorConfig(profile_path=str(unsigned), resources={"enabled": False}), transport=tr2)
    _requests(mon2, 1)
    mon2.tick()
    assert [c for c in tr2.calls if c[0] == "register_model"][0][1][2] == unsigned.read_bytes()
