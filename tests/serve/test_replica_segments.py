"""The replica's half of issue 12 without Ray: raywatch.serve.segments through the batch builder.

Each source of a segment value (route, version, replica, multiplexed model id, header, the
attribute hook, a feature), what is known for unsampled and failed requests, the labels a
prediction carries for its late label, configured values kept first, hashed columns, the
fairness prediction from a score and a threshold, and that nothing changes for a
deployment without segments.
"""

from __future__ import annotations

import numpy as np
import pytest
from starlette.requests import Request

from raywatch.serve.extract import HttpPayload
from raywatch.serve.segments import header_value
from raywatch.stats.labels import segment_label
from raywatch.stats.profile import Profile
from raywatch.stats.segment_traffic import SegmentTraffic
from raywatch.stats.segments import Segments, decode_summary

from rw_segments import flush, records, replica


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(0)
    return Profile.fit({"amount": rng.normal(size=2000), "prediction": rng.integers(0, 2, 2000),
                        "score": rng.random(2000)}, seed=0)


def _results(n, rng):
    s = rng.random(n)
    return [{"prediction": int(v > 0.5), "score": float(v)} for v in s]


def attrs(args, kwargs, result):
    return {"tier": args[0].get("tier", "free")}


def broken_attrs(args, kwargs, result):
    raise RuntimeError("no tier")


def _traffic(seg) -> dict:
    return {c: {label: t for label, t, _ in seg.items(c)} for c in seg.columns}


def test_every_source_gives_each_request_its_segment(profile):
    cfg = {"capture": {"feedback": True},
           "segments": {"columns": {"route": {"source": "route"}, "version": {"source": "version"},
                                    "replica": {"source": "replica"}, "country": {"source": "header",
                                                                                  "field": "X-Country"},
                                    "tier": {"source": "attribute"}, "amount_band": {"source": "feature",
                                                                                     "field": "band"}},
                        "attributes": f"{__name__}:attrs"}}
    b = replica(cfg, profile, replica_id="r7", version="v3")
    rng = np.random.default_rng(1)
    n = 40
    payloads = [{"amount": float(rng.normal()), "band": "high" if i % 4 == 0 else "low",
                 "tier": "gold" if i % 2 else "free"} for i in range(n)]
    batch = flush(b, payloads, _results(n, rng), [f"q{i}" for i in range(n)],
                  routes=["/a" if i < 30 else "/b" for i in range(n)])
    seg = Segments.from_dict(batch.segments, decode_summary)
    assert set(seg.columns) == {"route", "version", "replica", "country", "tier", "amount_band"}
    assert seg.rows("route", "/a") == 30 and seg.labels("version") == ["v3"] and seg.labels("replica") == ["r7"]
    assert seg.labels("country") == ["__missing__"]  # a handle call has no headers
    assert seg.rows("tier", "gold") == 20 and seg.rows("amount_band", "high") == 10
    whole = seg.whole
    assert whole is None  # shipped as the batch's summary, not twice
    assert batch.summary is not None
    traffic = _traffic(Segments.from_dict(batch.segment_traffic, SegmentTraffic.from_dict))
    assert traffic["route"]["/b"].requests == 10 and traffic["tier"]["free"].requests == 20
    rid, pred, score, tags = batch.predictions[0]
    assert rid == "q0" and tags["s"] == {"route": "/a", "version": "v3", "replica": "r7", "country": "__missing__",
                                         "tier": "free", "amount_band": "high"}


def test_unsampled_requests_count_where_their_value_is_known(profile):
    cfg = {"segments": {"columns": {"route": {"source": "route"}, "band": {"source": "feature"}}}}
    b = replica(cfg, profile)
    n = 10
    payloads = [{"amount": 0.1, "band": "x"} for _ in range(n)]
    batch = b.build(records(payloads, _results(n, np.random.default_rng(2)), [f"q{i}" for i in range(n)],
                            sampled=[i < 4 for i in range(n)], outcomes=[None] * 9 + ["ValueError"]))
    traffic = _traffic(Segments.from_dict(batch.segment_traffic, SegmentTraffic.from_dict))
    assert traffic["route"]["/"].requests == 10 and traffic["route"]["/"].errors == 1  # every request
    assert traffic["band"]["x"].requests == 4  # the sampled ones: only they show their features


def test_a_failed_request_counts_in_its_feature_segment(profile):
    cfg = {"segments": {"columns": {"band": {"source": "feature"}}}}
    b = replica(cfg, profile)
    payloads = [{"amount": 0.1, "band": "bad"}, {"amount": 0.2, "band": "good"}, {"amount": 0.3, "band": "bad"}]
    batch = b.build(records(payloads, _results(3, np.random.default_rng(3)), ["a", "b", "c"],
                            outcomes=["RuntimeError", None, "RuntimeError"]))
    traffic = _traffic(Segments.from_dict(batch.segment_traffic, SegmentTraffic.from_dict))
    assert (traffic["band"]["bad"].requests, traffic["band"]["bad"].errors) == (2, 2)
    assert traffic["band"]["good"].errors == 0


def test_headers_are_read_from_a_request_or_the_asgi_tee():
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"x-country", b"fr")], "query_string": b""}
    assert header_value((Request(scope),), "X-Country") == "fr"
    assert header_value((HttpPayload(b"", b"{}", [(b"X-Country", b"de")]),), "x-country") == "de"
    assert header_value(({"x-country": "it"},), "x-country") is None and header_value(None, "x") is None


def test_a_failing_attribute_hook_costs_only_its_values(profile):
    cfg = {"segments": {"columns": {"tier": {"source": "attribute"}}, "attributes": f"{__name__}:broken_attrs"}}
    b = replica(cfg, profile)
    batch = flush(b, [{"amount": 0.1}] * 5, _results(5, np.random.default_rng(4)), list("abcde"))
    seg = Segments.from_dict(batch.segments, decode_summary)
    assert seg.labels("tier") == ["__missing__"] and batch.summary is not None
    assert b.capture_errors == 5


def test_configured_values_are_kept_first_and_hashed_columns_never_show_values(profile, monkeypatch):
    monkeypatch.setenv("RW_SEG_KEY", "k3y")
    cfg = {"capture": {"feedback": True},
           "segments": {"top_k": 2, "hash_key": "${RW_SEG_KEY}",
                        "columns": {"country": {"source": "feature", "values": ["lu"]},
                                    "email": {"source": "feature", "hash": True}}}}
    b = replica(cfg, profile)
    n = 50
    payloads = [{"amount": 0.0, "country": "lu" if i == 0 else ("fr" if i % 2 else "de"),
                 "email": f"user{i % 3}@example.com"} for i in range(n)]
    batch = flush(b, payloads, _results(n, np.random.default_rng(5)), [f"q{i}" for i in range(n)])
    seg = Segments.from_dict(batch.segments, decode_summary)
    assert seg.labels("country") == ["fr", "lu"]  # lu, configured, is kept though rare
    assert seg.rows("country", "__other__") == 24  # de, beyond top_k=2
    assert all(label.startswith("h:") for label in seg.labels("email"))
    assert "example.com" not in str(batch.segments) + str(batch.predictions)
    assert batch.predictions[1][3]["s"]["email"] == segment_label("user1@example.com", key=b"k3y")


def test_the_fairness_prediction_comes_from_a_score_and_a_threshold(profile):
    cfg = {"capture": {"feedback": True},
           "fairness": {"attributes": {"group": {"source": "feature"}}, "prediction": "score", "threshold": 0.7}}
    b = replica(cfg, profile)
    scores = [0.1, 0.8, 0.9, 0.3]
    payloads = [{"amount": 0.0, "group": g} for g in ("a", "a", "b", "b")]
    batch = flush(b, payloads, [{"prediction": 0, "score": s} for s in scores], ["w", "x", "y", "z"])
    from raywatch.drift.fairness import GroupRates

    fair = Segments.from_dict(batch.fairness, GroupRates.from_dict)
    assert {lab: (g.counts["predictions"], g.counts["selected"]) for lab, g, _ in fair.items("group")} == \
        {"a": (2, 1), "b": (2, 1)}
    assert [p[3]["p"] for p in batch.predictions] == [0, 1, 1, 0] and batch.predictions[0][3]["f"] == {"group": "a"}


def test_without_segments_nothing_changes(profile):
    b = replica({"capture": {"feedback": True}}, profile)
    batch = flush(b, [{"amount": 0.5}] * 3, _results(3, np.random.default_rng(6)), ["a", "b", "c"])
    assert batch.segments is None and batch.segment_traffic is None and batch.fairness is None
    assert batch.attribution == {} and all(len(p) == 3 for p in batch.predictions)
    assert not b.segments.active(records([{}], [None], ["a"]), profile)
