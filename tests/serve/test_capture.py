import threading
import time

from raywatch.serve.capture import ARGS, OUTCOME, RESULT, STATUS, Capture, RateLimitedLog


def test_record_fields_and_drain_order():
    cap = Capture(buffer_size=10)
    t0 = time.perf_counter()
    cap.record("__call__", t0, None, None, ({"a": 1},), {}, 7)
    cap.record("predict", t0, "ValueError", None, (1,), {}, None)
    recs = cap.drain()
    assert [r[0] for r in recs] == ["__call__", "predict"]
    assert recs[0][RESULT] == 7 and recs[0][ARGS] == ({"a": 1},)
    assert recs[1][OUTCOME] == "ValueError"
    assert recs[0][2] >= t0
    assert cap.drain() == []


def test_bound_counts_drops():
    cap = Capture(buffer_size=3)
    for _ in range(10):
        cap.record("m", 0.0, None, None, (), {}, None)
    assert len(cap.buffer) == 3
    assert cap.dropped == 7


def test_sampling_drops_payload_not_the_record():
    cap = Capture(sample_rate=0.0)
    for _ in range(5):
        cap.record("m", 0.0, None, None, ({"x": 1},), {}, 1)
    recs = cap.drain()
    assert len(recs) == 5
    assert all(r[ARGS] is None and r[RESULT] is None for r in recs)
    half = Capture(sample_rate=0.5)
    for _ in range(2000):
        half.record("m", 0.0, None, None, ({"x": 1},), {}, 1)
    kept = sum(r[ARGS] is not None for r in half.drain())
    assert 800 < kept < 1200


def test_unsampled_http_response_keeps_status():
    class Resp:  # any object with an int status_code
        status_code = 404

    cap = Capture(sample_rate=0.0)
    cap.record("m", 0.0, None, None, (), {}, Resp())
    (r,) = cap.drain()
    assert r[STATUS] == 404 and r[RESULT] is None


def test_keep_results_for_feedback():
    cap = Capture(sample_rate=0.0, keep_results=True)
    cap.record("m", 0.0, None, None, ({"x": 1},), {}, 3)
    (r,) = cap.drain()
    assert r[ARGS] is None and r[RESULT] == 3


def test_disabled_records_nothing():
    cap = Capture(enabled=False)
    cap.record("m", 0.0, None, None, (), {}, None)
    assert len(cap.buffer) == 0 and cap.dropped == 0


def test_never_raises_and_counts_failures(caplog):
    cap = Capture()
    cap._ctx = lambda: 1 / 0  # a broken context lookup
    for _ in range(20):
        cap.record("m", 0.0, None, None, (), {}, None)
    assert cap.errors == 20
    warnings = [r for r in caplog.records if r.name == "raywatch.serve.capture"]
    assert 1 <= len(warnings) <= 5  # rate-limited


def test_wakes_flusher_at_threshold():
    ev = threading.Event()
    cap = Capture(flush_at=3, wake=ev)
    cap.record("m", 0.0, None, None, (), {}, None)
    cap.record("m", 0.0, None, None, (), {}, None)
    assert not ev.is_set()
    cap.record("m", 0.0, None, None, (), {}, None)
    assert ev.is_set()


def test_concurrent_records_are_all_counted():
    cap = Capture(buffer_size=1000)

    def work():
        for _ in range(500):
            cap.record("m", 0.0, None, None, (), {}, None)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cap.buffer) + cap.dropped == 2000
    assert len(cap.buffer) == 1000


def test_rate_limited_log(caplog):
    import logging

    log = RateLimitedLog(logging.getLogger("raywatch.test"), interval=60, per_interval=2)
    results = [log.warning("x %d", i) for i in range(5)]
    assert results == [True, True, False, False, False]
    assert log.suppressed == 3


def test_payloads_beyond_the_bound_are_dropped_and_counted_not_the_records():
    """200 sampled 1 MB payloads: at most ``payload_bound`` are held, the rest of the
    requests are recorded (latency, outcome) without their payload, and counted."""
    cap = Capture(buffer_size=1000)
    cap.payload_bound = 64
    blob = "x" * (1 << 20)
    for i in range(200):
        cap.record("m", 0.0, None, None, ({"blob": blob + str(i)},), {}, 1)
    recs = cap.drain()
    assert len(recs) == 200 and cap.dropped == 0
    assert sum(r[ARGS] is not None for r in recs) == 64 and cap.payloads_dropped == 136
    assert all(r[RESULT] is None for r in recs[64:])
    cap.keep_results = True  # feedback joins keep the (small) result
    cap.payload_bound = 0
    cap.record("m", 0.0, None, None, ({"x": 1},), {}, 3)
    (r,) = cap.drain()
    assert r[ARGS] is None and r[RESULT] == 3 and cap.payloads_dropped == 137
    cap.record_decided("m", 0.0, None, 200, ({"x": 1},), {}, 4)
    (r,) = cap.drain()
    assert r[ARGS] is None and r[RESULT] == 4 and cap.payloads_dropped == 138
