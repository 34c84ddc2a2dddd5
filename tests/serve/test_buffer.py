import gc
import time
import types

import numpy as np
import pytest

from raywatch.serve.buffer import BatchBuilder, Labels
from raywatch.serve.capture import Capture
from raywatch.serve.extract import Extractor
from raywatch.stats.profile import Profile
from raywatch.stats.summary import WindowSummary


def _labels():
    return Labels(app="app", deployment="Clf", replica_id="r1", model="fraud", version="v1", node_id="n")


def _ctx(rid, http=False, route="/"):
    return types.SimpleNamespace(request_id=rid, route=route, is_http_request=http)


def _fill(cap, n, latency=0.01, **kw):
    for i in range(n):
        cap.buffer.append(("__call__", 100.0, 100.0 + latency, kw.get("outcome"), kw.get("status"),
                           _ctx(f"req-{i}"), kw.get("args", ({"a": float(i), "c": "x"},)), {},
                           kw.get("result", {"prediction": i % 2, "score": 0.25}), None))


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(0)
    return Profile.fit({"a": rng.normal(50, 30, 1000), "c": rng.choice(["x", "y"], 1000),
                        "prediction": rng.integers(0, 2, 1000), "score": rng.random(1000)})


def test_counters_sketch_and_labels(profile):
    cap = Capture()
    _fill(cap, 50, latency=0.02)
    _fill(cap, 3, outcome="ValueError")
    _fill(cap, 2, status=503)
    b = BatchBuilder(_labels(), Extractor(), profile=profile).build(cap.drain(), {"cpu_percent": 1.0})
    assert (b.app, b.deployment, b.model, b.version, b.replica_id) == ("app", "Clf", "fraud", "v1", "r1")
    assert b.requests == 55
    assert b.errors == {"ValueError": 3, "http_5xx": 2}
    assert b.statuses == {"503": 2}
    assert b.methods == {"__call__": 55}
    assert b.routes == {"/": 55}
    sk = b.latency_sketch()
    assert sk.count == 55
    assert sk.quantile(0.5) == pytest.approx(0.02, rel=0.011)
    assert b.resources == {"cpu_percent": 1.0}
    assert b.seq == 1 and b.end_ts >= b.start_ts


def test_summary_rows_join_features_and_predictions(profile):
    cap = Capture()
    _fill(cap, 40)
    builder = BatchBuilder(_labels(), Extractor(), profile=profile)
    b = builder.build(cap.drain())
    ws = WindowSummary.from_bytes(b.summary)
    assert ws.rows == 40  # failed requests are not summarized; each success is one row
    assert builder.rows_summarized == 40
    assert b.predictions == []  # feedback off


def test_no_profile_no_summary_but_counts():
    cap = Capture()
    _fill(cap, 5)
    b = BatchBuilder(_labels(), Extractor()).build(cap.drain())
    assert b.summary is None and b.requests == 5


def test_feedback_predictions_bounded(profile):
    cap = Capture()
    _fill(cap, 30)
    b = BatchBuilder(_labels(), Extractor(), profile=profile, feedback=True, max_predictions=10).build(cap.drain())
    assert len(b.predictions) == 10
    assert b.predictions[0] == ("req-0", 0, 0.25)


def test_extractor_failure_is_counted_not_raised(profile):
    def boom(*a, **k):
        raise RuntimeError("bad extractor")

    cap = Capture()
    _fill(cap, 4)
    builder = BatchBuilder(_labels(), Extractor(feature_extractor=boom), profile=profile)
    b = builder.build(cap.drain())
    assert b.requests == 4 and builder.capture_errors == 4


def test_heartbeat_batch_and_seq_increases():
    builder = BatchBuilder(_labels(), Extractor())
    a = builder.build([], {"cpu_percent": 2.0})
    b = builder.build([], None)
    assert a.requests == 0 and a.latency_sketch().count == 0
    assert (a.seq, b.seq) == (1, 2)


def test_plain_http_handler_status():
    from starlette.responses import JSONResponse

    cap = Capture()
    cap.buffer.append(("__call__", 1.0, 1.1, None, None, _ctx("r", http=True), (None,), {}, JSONResponse({"x": 1}, status_code=201), None))
    cap.buffer.append(("__call__", 1.0, 1.1, None, None, _ctx("s", http=True), (None,), {}, "text", None))
    b = BatchBuilder(_labels(), Extractor()).build(cap.drain())
    assert b.statuses == {"201": 1, "200": 1}


def test_typed_columns_summarize_like_rows(profile):
    from raywatch.serve.buffer import _columns

    rows = [{"a": float(i), "c": "x" if i % 3 else "y", "prediction": i % 2, "score": 0.1 * (i % 10)} for i in range(300)]
    rows[4]["a"] = None          # missing
    del rows[9]["c"]             # absent key
    rows[11]["score"] = "n/a"    # wrong type in a numeric column
    rows[12]["c"] = 7            # number in a categorical column
    cols = _columns(rows)
    assert cols["prediction"].dtype.kind == "i" and cols["a"].dtype == object and cols["c"].dtype == object
    assert profile.summarize(cols, seed=3).to_bytes() == profile.summarize(rows, seed=3).to_bytes()


def test_columns_same_keys_fast_path_matches_rows(profile):
    from raywatch.serve.buffer import _columns

    rows = [{"a": float(i), "c": "x" if i % 3 else "y", "prediction": i % 2, "score": 0.1 * (i % 10)} for i in range(50)]
    rows[7] = {"score": 0.5, "prediction": 1, "c": "x", "a": 2.0}  # same keys, another order
    cols = _columns(rows)
    assert list(cols) == ["a", "c", "prediction", "score"]
    assert cols["a"][7] == 2.0 and cols["prediction"][7] == 1 and cols["c"][7] == "x"
    assert cols["a"].dtype.kind == "f" and cols["prediction"].dtype.kind == "i"
    assert profile.summarize(cols, seed=3).to_bytes() == profile.summarize(rows, seed=3).to_bytes()
    assert list(_columns([{"a": 1}, {"a": 2}])["a"]) == [1, 2] and _columns([]) == {}


def _rec(payload, result, i=0, kwargs=None):
    return ("__call__", 1.0, 1.001, None, None, _ctx(f"q{i}"), (payload,), kwargs or {}, result, None)


def _row_path_columns(records):
    from raywatch.serve.buffer import _columns, _join

    ex, rows = Extractor(), []
    for r in records:
        _join(rows, ex.features(r[6], r[7]), ex.predictions(r[8]))
    return _columns(rows)


_FLAT_CASES = {
    "floats and a dict result": lambda i: ({f"f{j}": float(i * j) for j in range(5)}, {"prediction": i % 2, "score": i / 10}),
    "numpy scalars": lambda i: ({"a": np.float32(i / 3), "b": np.int64(i)}, {"y": np.float64(i)}),
    "ints, bools, strs": lambda i: ({"n": i, "ok": bool(i % 2), "c": "xy"[i % 2]}, 0.5 * i),
    "int and float mixed": lambda i: ({"a": i if i % 2 else float(i)}, True),
    "a prediction key overrides a feature": lambda i: ({"score": -1.0, "a": 1.0}, {"score": float(i)}),
    "keys in another order": lambda i: ({"a": 1.0, "b": 2.0} if i % 2 else {"b": 2.0, "a": float(i)}, i),
}

_NOT_FLAT_CASES = {
    "a None value": lambda i: ({"a": None if i == 3 else 1.0}, 1),
    "a nested dict": lambda i: ({"a": 1.0, "m": {"x": i}}, 1),
    "a list value": lambda i: ({"a": 1.0, "v": [i, i + 1]}, 1),
    "bytes": lambda i: ({"a": 1.0, "b": b"x"}, 1),
    "str mixed with numbers": lambda i: ({"a": "x" if i % 2 else 2.0}, 1),
    "int keys": lambda i: ({1: 1.0, 2: 2.0}, 1),
    "keys differ between requests": lambda i: ({"a": 1.0} if i % 2 else {"b": 1.0}, 1),
    "an empty payload": lambda i: ({}, 1),
    "results of mixed kinds": lambda i: ({"a": 1.0}, {"p": 1} if i % 2 else 1),
    "a nested result": lambda i: ({"a": 1.0}, {"p": {"q": i}}),
}


@pytest.mark.parametrize("case", list(_FLAT_CASES))
def test_flat_columns_equal_the_row_path(case):
    from raywatch.serve.buffer import _flat_columns

    records = [_rec(*_FLAT_CASES[case](i), i=i) for i in range(7)]
    fast, slow = _flat_columns(records), _row_path_columns(records)
    assert fast is not None and list(fast) == list(slow)
    for name in slow:
        assert fast[name].dtype == slow[name].dtype, name
        assert fast[name].tolist() == slow[name].tolist(), name


@pytest.mark.parametrize("case", list(_NOT_FLAT_CASES))
def test_payloads_that_are_not_flat_take_the_row_path(case, profile):
    from raywatch.serve.buffer import _flat_columns

    records = [_rec(*_NOT_FLAT_CASES[case](i), i=i) for i in range(6)]
    assert _flat_columns(records) is None
    # the batch still summarizes every request, through the row path
    builder = BatchBuilder(_labels(), Extractor(), profile=profile)
    b = builder.build(records)
    assert builder.capture_errors == 0
    assert WindowSummary.from_bytes(b.summary).rows == 6 == builder.rows_summarized


def test_columnar_batch_summarizes_like_the_row_path(profile, monkeypatch):
    """The same records through the columnar path and (forced) through the row path give
    the same summary, sample included, under the same seed."""
    import raywatch.serve.buffer as buf

    rng = np.random.default_rng(5)
    records = [_rec({"a": float(v), "c": "xy"[i % 2]}, {"prediction": i % 2, "score": float(s)}, i=i)
               for i, (v, s) in enumerate(zip(rng.normal(50, 30, 300), rng.random(300)))]
    records[5] = records[5][:3] + ("ValueError",) + records[5][4:]  # a failed request: not summarized
    seen = []
    real = profile.summarize

    def summarize(data, **kw):
        seen.append(data)
        return real(data, seed=11)

    monkeypatch.setattr(profile, "summarize", summarize)
    fast = BatchBuilder(_labels(), Extractor(), profile=profile).build(records)
    monkeypatch.setattr(buf, "_flat_columns", lambda recs: None)
    slow = BatchBuilder(_labels(), Extractor(), profile=profile).build(records)
    assert fast.summary == slow.summary and WindowSummary.from_bytes(fast.summary).rows == 299
    assert isinstance(seen[0], dict) and all(isinstance(v, np.ndarray) for v in seen[0].values())


def test_mixed_flat_and_other_payloads_summarize_every_request(profile):
    records = [_rec({"a": float(i), "c": "x"}, {"prediction": 1, "score": 0.5}, i=i) for i in range(10)]
    records += [_rec([float(i)], 1, i=10 + i) for i in range(4)]  # a list payload: row path
    records += [_rec({"a": 1.0}, 1, i=20, kwargs={"k": 2})]      # keyword arguments: row path
    builder = BatchBuilder(_labels(), Extractor(), profile=profile, feedback=True)
    b = builder.build(records)
    assert WindowSummary.from_bytes(b.summary).rows == 15 == builder.rows_summarized
    assert len(b.predictions) == 15 and b.predictions[0] == ("q0", 1, 0.5)


# ------------------------------------------------------- a bad value costs only itself

HUGE = 10 ** 400  # what json.loads makes of a 400-digit integer


def test_one_huge_integer_costs_only_its_own_value(profile):
    records = [_rec({"a": float(i), "c": "x"}, {"prediction": 1, "score": 0.5}, i=i) for i in range(999)]
    records.append(_rec({"a": HUGE, "c": "y"}, {"prediction": 0, "score": 0.5}, i=999))
    builder = BatchBuilder(_labels(), Extractor(), profile=profile)
    b = builder.build(records)
    assert b.summary is not None and builder.capture_errors == 0
    ws = WindowSummary.from_bytes(b.summary)
    assert ws.rows == 1000 and ws.column("a").wrong_type == 1 and ws.column("a").count == 999
    assert ws.column("c").count == 1000
    assert b.wrong_types == {"a": ["int (too large for float)"]}


def test_wrong_types_name_what_was_seen(profile):
    records = [_rec({"a": "n/a" if i % 10 == 0 else float(i), "c": 3 if i == 5 else "x"}, 1, i=i) for i in range(50)]
    b = BatchBuilder(_labels(), Extractor(), profile=profile).build(records)
    ws = WindowSummary.from_bytes(b.summary)
    assert ws.column("a").wrong_type == 5 and ws.column("c").wrong_type == 1
    assert b.wrong_types == {"a": ["str"], "c": ["int"]}
    clean = BatchBuilder(_labels(), Extractor(), profile=profile).build(records[1:5])
    assert clean.wrong_types == {}


class _Sulky(float):
    """A float whose comparisons raise: no summary can take it."""

    def __ne__(self, other):
        raise RuntimeError("no comparing me")

    __eq__ = __ne__
    __hash__ = float.__hash__


def test_a_value_that_breaks_summarizing_costs_only_itself(profile):
    rows = [{"a": float(i), "c": "x"} for i in range(30)]
    rows[7] = {"a": 7.0, "c": _Sulky(1.0)}
    builder = BatchBuilder(_labels(), Extractor(feature_extractor=lambda p: p), profile=profile)
    b = builder.build([_rec(r, {"prediction": 1, "score": 0.5}, i=i) for i, r in enumerate(rows)])
    assert b.summary is not None and builder.capture_errors == 0
    ws = WindowSummary.from_bytes(b.summary)
    assert ws.rows == 30 and ws.column("c").wrong_type == 1 and ws.column("c").count == 29
    assert ws.column("a").count == 30
    assert b.wrong_types == {"c": ["_Sulky"]}


# ------------------------------------------------------------ bounded payloads


def _cpu(fn, *args):
    """``(fn(*args), CPU seconds it took)``, without a collection of other tests' garbage."""
    gc.disable()
    try:
        t0 = time.thread_time()
        out = fn(*args)
        return out, time.thread_time() - t0
    finally:
        gc.enable()


def test_a_row_with_too_many_keys_is_a_counted_drop(profile):
    wide = {f"k{i}": float(i) for i in range(100_000)}
    records = [_rec({"a": 1.0, "c": "x"}, 1, i=i) for i in range(10)]
    records.insert(3, _rec(wide, 1, i=99))
    records.append(_rec({"a": 2.0, "m": {f"k{i}": i for i in range(5000)}}, 1, i=100))  # nested: also counted
    builder = BatchBuilder(_labels(), Extractor(max_keys=1000), profile=profile)
    b, spent = _cpu(builder.build, records)
    assert spent < 0.05  # was 0.71 s of flusher CPU for the 100,000-key dict
    assert b.requests == 12 and builder.capture_errors == 0
    assert builder.payloads_dropped == {"too_many_keys": 2}
    assert WindowSummary.from_bytes(b.summary).rows == 10


def test_payloads_beyond_the_byte_budget_are_counted_drops(profile):
    blob = "x" * (1 << 20)
    records = [_rec({"a": float(i), "c": "x", "blob": blob + str(i)}, 1, i=i) for i in range(40)]
    builder = BatchBuilder(_labels(), Extractor(), profile=profile, max_buffer_bytes=8 << 20)
    b = builder.build(records)
    kept = WindowSummary.from_bytes(b.summary).rows
    assert b.requests == 40 and kept == 7  # a bit over 1 MiB each: seven fit in 8 MiB
    assert builder.payloads_dropped == {"byte_budget": 40 - kept}
    assert builder.payload_bytes == pytest.approx(1 << 20, rel=0.05)  # the estimate, per payload
    assert builder.payload_bound(sample_rate=1.0, buffer_size=100_000) == kept == 7  # 8 MiB over (1 MiB and a bit)
    assert builder.payload_bound(sample_rate=0.5, buffer_size=100_000) == 14  # records, half of them sampled
    assert builder.payload_bound(sample_rate=1.0, buffer_size=5) == 5


def test_payload_size_estimate_is_bounded_and_survives_anything():
    from raywatch.serve.buffer import estimate_bytes
    from raywatch.serve.extract import HttpPayload

    assert estimate_bytes("x" * 1_000_000) >= 1_000_000
    assert estimate_bytes(b"x" * 1000) >= 1000 and estimate_bytes(np.zeros(1000)) >= 8000
    assert estimate_bytes(HttpPayload(b"a=1", b"y" * 5000)) >= 5000
    assert 800_000 < estimate_bytes({"k": [float(i) for i in range(100_000)]}) < 8_000_000  # extrapolated
    loop = []
    loop.append(loop)
    deep = []
    for _ in range(30_000):
        deep = [deep]
    odd = (loop, deep, {"d": {i: {"x": i} for i in range(10_000)}}, object(), np.array([object()] * 5), {(1, 2): {None}})
    sizes, spent = _cpu(lambda objs: [estimate_bytes(obj) for obj in objs], odd)
    assert all(size > 0 for size in sizes)
    assert spent < 0.05  # a bounded walk: a few hundred objects at most


# ------------------------------------------------------------ redaction


def test_redaction_of_a_profile_column_is_named_once_per_config(profile, caplog):
    import logging

    records = [_rec({"a": float(i), "c": "x", "card_number": "4111"}, 1, i=i) for i in range(5)]
    builder = BatchBuilder(_labels(), Extractor(redact=["card_*", "c"]), profile=profile)
    with caplog.at_level(logging.WARNING, logger="raywatch.serve.buffer"):
        b = builder.build(records)
        builder.build(records)
    assert b.redacted == {"c": "c"}  # card_number is not a profile column: not reported
    warned = [r.getMessage() for r in caplog.records if "redact" in r.getMessage()]
    assert len(warned) == 1 and "'c'" in warned[0] and "missing" in warned[0]
    builder.extractor = Extractor(redact=["*"], redact_mode="hash")  # hashed columns are still there
    assert builder.build(records).redacted == {}
    builder.extractor = Extractor(redact=["z", "[ab]*", "a"])
    assert builder.build(records).redacted == {"a": "[ab]*"}  # the first rule that matches
