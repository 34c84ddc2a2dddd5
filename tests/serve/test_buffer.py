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
