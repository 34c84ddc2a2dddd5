import pickle

import pytest

from raywatch.stats.batch import NO_GPU, ReplicaBatch, model_key
from raywatch.stats.sketch import LatencySketch


def _batch(**kw):
    sk = LatencySketch()
    sk.add_many([0.001, 0.002, 0.004])
    base = dict(
        app="app",
        deployment="Clf",
        model="clf",
        version="v2",
        replica_id="Clf#abc",
        node_id="n1",
        start_ts=100.0,
        end_ts=101.0,
        requests=3,
        errors={"ValueError": 1, "http_5xx": 1},
        statuses={"200": 2, "500": 1},
        latency=sk.to_dict(),
        summary=b"\x00\x01",
        predictions=[("req-1", 1, 0.9), ("req-2", 0, None)],
        resources={"cpu_percent": 12.5, "rss_bytes": 1 << 20, "gpus": [], "gpu_status": NO_GPU},
        dropped_total=4,
        capture_errors_total=1,
        seq=7,
    )
    base.update(kw)
    return ReplicaBatch(**base)


def test_fields_and_helpers():
    b = _batch()
    assert b.model_key == "app/Clf" == model_key("app", "Clf")
    assert b.error_count == 2
    assert b.latency_sketch().count == 3
    assert ReplicaBatch(app="a", deployment="d", replica_id="r", start_ts=0, end_ts=0).latency_sketch().count == 0


def test_roundtrip_dict_and_pickle():
    b = _batch()
    assert ReplicaBatch.from_dict(b.to_dict()) == b
    assert pickle.loads(pickle.dumps(b)) == b


def test_from_dict_rejects_unknown_fields():
    d = _batch().to_dict()
    d["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        ReplicaBatch.from_dict(d)


def test_data_quality_fields_are_optional_and_round_trip():
    old = _batch().to_dict()
    for name in ("wrong_types", "redacted", "payloads_dropped_total", "profile_error"):
        old.pop(name)
    b = ReplicaBatch.from_dict(old)  # a batch from an older replica
    assert (b.wrong_types, b.redacted, b.payloads_dropped_total, b.profile_error) == ({}, {}, {}, None)
    full = _batch(wrong_types={"amount": ["str", "int (too large for float)"]}, redacted={"card_present": "card_*"},
                  payloads_dropped_total={"byte_budget": 3}, profile_error="cannot read x.profile")
    assert ReplicaBatch.from_dict(full.to_dict()) == full
    assert pickle.loads(pickle.dumps(full)) == full


def test_a_batch_pickled_by_an_older_replica_gets_the_new_fields_defaults():
    """Schema-1 state files journaled batches as pickles made before these fields existed."""
    old = _batch()
    for name in ("wrong_types", "redacted", "payloads_dropped_total", "profile_error"):
        del old.__dict__[name]
    b = pickle.loads(pickle.dumps(old))
    assert (b.wrong_types, b.redacted, b.payloads_dropped_total, b.profile_error) == ({}, {}, {}, None)
    assert b.requests == 3 and b.seq == 7
    b.wrong_types["x"] = ["str"]
    assert pickle.loads(pickle.dumps(old)).wrong_types == {}  # each gets its own mapping
