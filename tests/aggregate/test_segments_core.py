"""Segments, fairness, attribution and replica outliers through the product path without Ray
(issue 12): replicas' batch builders (raywatch.serve.buffer + raywatch.serve.segments) →
StatsCore (ingest, feedback join, evaluation, series) → the alerting hub.

* one segment drifts and loses accuracy, the others stay healthy: its verdicts and series
  name it, a segment rule yields one alert for it alone, a model-wide rule none per segment
  — test_one_segment_drifts_*;
* fairness figures equal fairlearn's on the same raw data within 1e-9, labels joined per
  group (also with a hashed attribute) — test_fairness_equals_fairlearn_*;
* attribution: of two drifted features only the one the score uses is credited —
  test_attribution_*;
* replica outliers: the shifted replica is named, its default rule fires for it alone —
  test_replica_outlier_*;
* bounded: a million distinct values cost no more than K segments; memory about K× a
  segment-less summary — test_cardinality_bomb_*, test_memory_*;
* state is data: segments survive a checkpoint and a journal replay; a bad part costs only
  itself — test_segment_state_*, test_refused_*.
"""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from raywatch.aggregate import StatsCore, Store
from raywatch.alerts.hub import AlertingHub
from raywatch.config import MonitorConfig
from raywatch.drift.attribution_tables import fit_reference
from raywatch.stats.labels import OTHER, segment_label
from raywatch.stats.profile import Profile

from rw_segments import assert_equals_fairlearn, flush, replica, rows_of

pytest.importorskip("fairlearn.metrics", reason="fairlearn is a test dependency (pip install .[test])")

KEY = "app/Model"


def _profile(seed=0, n=6000, attribution=False):
    rng = np.random.default_rng(seed)
    ref = {"amount": rng.normal(100.0, 20.0, n), "age": rng.normal(40.0, 10.0, n),
           "country": rng.choice(["de", "fr", "us"], n)}
    ref["prediction"] = (ref["amount"] > 110).astype(int)
    ref["score"] = 1.0 / (1.0 + np.exp(-(ref["amount"] - 110.0) / 10.0))
    prof = Profile.fit(ref, seed=0)
    return fit_reference(prof, ref, predictions=["prediction", "score"]) if attribution else prof


def _core(cfg, prof, store=None):
    cfg = MonitorConfig.model_validate(cfg)
    hub = AlertingHub(registry=CollectorRegistry(), background=False)
    core = StatsCore(cfg, store, alerting=hub)
    core.register_model(KEY, cfg, prof.to_bytes())
    return core, hub


def _traffic(rng, n, drifted=(), shift=0.0):
    country = rng.choice(["de", "fr", "us"], n)
    amount = rng.normal(100.0, 20.0, n) + np.where(np.isin(country, list(drifted)), 60.0, 0.0) + shift
    age = rng.normal(40.0, 10.0, n)
    pred = (amount > 110).astype(int)
    score = 1.0 / (1.0 + np.exp(-(amount - 110.0) / 10.0))
    # the model is right except in the drifted segments, where half its answers are wrong
    label = np.where(np.isin(country, list(drifted)) & (rng.random(n) < 0.5), 1 - pred, pred)
    payloads = rows_of({"amount": amount, "age": age, "country": country})
    results = [{"prediction": int(p), "score": float(s)} for p, s in zip(pred, score)]
    return payloads, results, label


def _send(core, builder, payloads, results, labels, prefix, now, **kw):
    ids = [f"{prefix}-{i}" for i in range(len(payloads))]
    assert core.ingest(flush(builder, payloads, results, ids, **kw), now=now) == "ok"
    core.feedback_many([(rid, int(lab), KEY) for rid, lab in zip(ids, labels)], now=now)
    return ids


SEGMENT_RULES = [
    {"name": "SegmentAccuracyLow", "expr": 'accuracy{segment_column="country"} < 0.8'},
    {"name": "SegmentAmountDrift", "expr": 'drift_detected{segment_column="country", feature="amount"} == 1'},
    {"name": "ModelAccuracyLow", "expr": "accuracy < 0.5"},
]


def _cfg(**extra):
    base = {"segments": {"columns": {"country": {}}}, "capture": {"feedback": True},
            "windows": {"length": "1m", "rolling": 2}, "drift": {"alpha": 0.01},
            "alerting": {"rules": SEGMENT_RULES, "sinks": [{"name": "log", "type": "log"}]}}
    base.update(extra)
    return base


def test_one_segment_drifts_and_loses_accuracy_the_others_stay_healthy():
    prof = _profile()
    core, hub = _core(_cfg(), prof)
    rng = np.random.default_rng(1)
    now = time.time()
    for r in ("r1", "r2"):
        _send(core, replica(_cfg(), prof, r), *_traffic(rng, 1500, drifted=("fr",)), r, now)
    st = core.evaluate(now=now + 1)["models"][KEY]
    segs = {e["segment"]: e for e in st["rolling"]["segments"]["country"]}
    assert [e["segment"] for e in st["rolling"]["segments"]["country"]][0] == "fr"  # worst first
    assert segs["fr"]["dataset_drift"] is not None and "amount" in segs["fr"]["drifted_columns"]
    assert segs["fr"]["performance"]["accuracy"] < 0.7
    for c in ("de", "us"):
        assert "amount" not in segs[c]["drifted_columns"] and segs[c]["performance"]["accuracy"] > 0.99
        assert segs[c]["requests"] > 800 and segs[c]["rows"] == segs[c]["requests"]
    # country itself is a segment column: never tested within its own segments
    assert all("country" not in e["drift"] for e in st["rolling"]["segments"]["country"])
    assert sum(e["rows"] for e in segs.values()) == 3000
    firing = sorted((a["labels"]["alertname"], a["labels"].get("segment")) for a in st["alerts"])
    assert firing == [("SegmentAccuracyLow", "fr"), ("SegmentAmountDrift", "fr")]
    by = {}
    for s in core.models[KEY].series:
        by.setdefault(s.name, []).append(s.labels)
    assert {lab.get("segment") for lab in by["accuracy"]} == {None, "de", "fr", "us"}
    assert all(lab.get("segment_column") == "country" for lab in by["segment_rows"])
    hub.close(timeout=5)


def test_fairness_equals_fairlearn_through_the_product_path():
    prof = _profile()
    cfg = _cfg(fairness={"attributes": {"sex": {"source": "feature"}}, "min_group_size": 1, "score": "score"})
    core, hub = _core(cfg, prof)
    rng = np.random.default_rng(7)
    now = time.time()
    sexes, y_true, y_pred = [], [], []
    for r in ("r1", "r2", "r3"):
        payloads, results, _ = _traffic(rng, 900)
        sex = rng.choice(["f", "m", "x"], len(payloads), p=[0.45, 0.45, 0.1])
        for p, s in zip(payloads, sex):
            p["sex"] = str(s)
        pred = np.array([res["prediction"] for res in results])
        truth = np.where(rng.random(len(pred)) < np.where(sex == "f", 0.75, 0.9), pred, 1 - pred)
        _send(core, replica(cfg, prof, r), payloads, results, truth, r, now)
        sexes += list(sex)
        y_true += list(truth)
        y_pred += list(pred)
    rep = core.evaluate(now=now + 1)["models"][KEY]["rolling"]["fairness"]["sex"]
    g, yt, yp = np.array(sexes), np.array(y_true), np.array(y_pred)
    assert_equals_fairlearn(rep, yt, yp, g)
    assert rep["group_rows"] == {k: int((g == k).sum()) for k in ("f", "m", "x")}
    names = {s.name for s in core.models[KEY].series}
    assert {"fairness_disparate_impact", "fairness_selection_rate", "fairness_ci_low"} <= names
    hub.close(timeout=5)


def test_hashed_attribute_groups_never_leave_the_replica_raw(monkeypatch):
    monkeypatch.setenv("RW_TEST_HASH_KEY", "s3cr3t-key")
    prof = _profile()
    cfg = _cfg(segments={"columns": {"country": {}}, "hash_key": "${RW_TEST_HASH_KEY}"},
               fairness={"attributes": {"sex": {"source": "feature", "hash": True, "reference": "male"}},
                         "min_group_size": 1})
    core, hub = _core(cfg, prof)
    rng = np.random.default_rng(3)
    payloads, results, labels = _traffic(rng, 600)
    for p, s in zip(payloads, rng.choice(["female", "male"], len(payloads))):
        p["sex"] = str(s)
    b = flush(replica(cfg, prof), payloads, results, [f"q{i}" for i in range(600)])
    shipped = json.dumps(b.fairness) + json.dumps([p[3] for p in b.predictions]) + str(b.summary)
    assert "male" not in shipped and "h:" in shipped
    now = time.time()
    core.ingest(b, now=now)
    core.feedback_many([(f"q{i}", int(lab), KEY) for i, lab in enumerate(labels)], now=now)
    rep = core.evaluate(now=now + 1)["models"][KEY]["rolling"]["fairness"]["sex"]
    want = segment_label("male", key=b"s3cr3t-key")
    assert rep["reference"] == want and set(rep["groups"]) == {want, segment_label("female", key=b"s3cr3t-key")}
    assert rep["groups"][want]["true_positive_rate"]["tested"]
    hub.close(timeout=5)


def test_attribution_credits_the_feature_the_score_uses():
    prof = _profile(attribution=True)
    core, hub = _core(_cfg(), prof)
    rng = np.random.default_rng(11)
    payloads, results, labels = _traffic(rng, 3000, shift=30.0)  # amount drifts and moves the score
    for p in payloads:
        p["age"] += 25.0  # age drifts too, but the score does not read it
    now = time.time()
    _send(core, replica(_cfg(), prof), payloads, results, labels, "q", now)
    st = core.evaluate(now=now + 1)["models"][KEY]
    roll, drift = st["rolling"], st["drift"]["columns"]
    assert drift["score"]["drifted"] and drift["age"]["drifted"]
    a = roll["attribution"]["score"]
    first = a["features"][0]
    assert first["feature"] == "amount" and first["share"] > 0.8 and first["explains"]
    age = next(f for f in a["features"] if f["feature"] == "age")
    assert abs(age["share"]) < 0.1 and not age["explains"]
    shares = {s.labels["feature"]: s.value for s in core.models[KEY].series if s.name == "drift_attribution_share"
              and s.labels["prediction"] == "score"}
    assert shares["amount"] > 0.8
    hub.close(timeout=5)


def test_replica_outlier_is_named_and_its_default_rule_fires_for_it_alone():
    prof = _profile()
    cfg = _cfg(alerting={"sinks": [{"name": "log", "type": "log"}]}, windows={"length": "10m", "rolling": 3})
    core, hub = _core(cfg, prof)
    rng = np.random.default_rng(5)
    now = time.time()
    builders = {r: replica(cfg, prof, r) for r in ("r1", "r2", "r3")}
    for k in range(2):  # the peers are kept once the model has three replicas
        for r, b in builders.items():
            payloads, results, labels = _traffic(rng, 600, shift=40.0 if r == "r2" else 0.0)
            _send(core, b, payloads, results, labels, f"{r}-{k}", now + k)
    st = core.evaluate(now=now + 2)["models"][KEY]
    (rep,) = st["rolling"]["replica_outliers"].values()
    assert rep["outliers"] == ["r2"] and "amount" in rep["replicas"]["r2"]["differing"]
    values = {s.labels["replica"]: s.value for s in core.models[KEY].series if s.name == "replica_outlier"}
    assert values == {"r1": 0.0, "r2": 1.0, "r3": 0.0}
    assert [a["state"] for a in st["alerts"] if a["labels"]["alertname"] == "ReplicaOutlier"] == ["pending"]
    st = core.evaluate(now=now + 2 + 601)["models"][KEY]  # for: 10m
    fired = [a["labels"]["replica"] for a in st["alerts"] if a["labels"]["alertname"] == "ReplicaOutlier"]
    assert fired == ["r2"]
    hub.close(timeout=5)


def _segments_state_bytes(core):
    w = next(iter(core.models[KEY].open.values()))
    return w, len(json.dumps(w.segments.state()["summaries"]))


def test_memory_is_about_k_segment_less_summaries():
    prof = _profile()
    k = 5
    cfg = _cfg(segments={"columns": {"customer": {"source": "feature", "field": "customer"}}, "top_k": k})
    core, hub = _core(cfg, prof)
    rng = np.random.default_rng(2)
    now = time.time()
    b = replica(cfg, prof)
    for j in range(8):
        payloads, results, labels = _traffic(rng, 2000)
        for i, p in enumerate(payloads):
            p["customer"] = f"c{rng.integers(0, 50)}"
        _send(core, b, payloads, results, labels, f"q{j}", now)
    w, size = _segments_state_bytes(core)
    whole = len(base64.b64encode(w.summary.to_bytes()))
    assert len(w.segments.summaries.labels("customer")) == k
    assert size <= (k + 1) * whole * 1.1
    hub.close(timeout=5)


@pytest.mark.parametrize("flushes,rows", [pytest.param(5, 10_000, id="50k"),
                                          pytest.param(100, 10_000, id="1M", marks=pytest.mark.slow)])
def test_cardinality_bomb_of_distinct_values_stays_bounded(flushes, rows):
    prof = _profile()
    k = 20
    cfg = _cfg(segments={"columns": {"user": {"source": "feature"}}, "top_k": k})
    core, hub = _core(cfg, prof)
    rng = np.random.default_rng(9)
    now = time.time()
    b = replica(cfg, prof)
    base_payloads, base_results, _ = _traffic(rng, rows)
    sizes = []
    for j in range(flushes):  # every row a value never seen before: rows × flushes distinct values
        payloads = [dict(p, user=f"u{j}-{i}") for i, p in enumerate(base_payloads)]
        batch = flush(b, payloads, base_results, [f"q{j}-{i}" for i in range(rows)])
        assert len(batch.segments["columns"][0]["segments"]) <= k
        core.ingest(batch, now=now)
        if j in (flushes // 2, flushes - 1):
            sizes.append(_segments_state_bytes(core)[1])
    st = core.evaluate(now=now + 1)["models"][KEY]
    entries = st["rolling"]["segments"]["user"]
    assert len(entries) <= k + 1 and entries[-1]["segment"] == OTHER or any(e["segment"] == OTHER for e in entries)
    assert sum(e["rows"] for e in entries) == flushes * rows
    assert sizes[1] <= sizes[0] * 1.05  # bounded: no growth with the number of distinct values
    hub.close(timeout=5)


def test_segment_state_survives_a_checkpoint_and_a_journal_replay(tmp_path):
    prof = _profile()
    cfg = _cfg(fairness={"attributes": {"country_group": {"source": "feature", "field": "country"}},
                         "min_group_size": 1})
    path = str(tmp_path / "s.sqlite")
    core, hub = _core(cfg, prof, Store(path))
    rng = np.random.default_rng(4)
    now = time.time()
    b = replica(cfg, prof)
    _send(core, b, *_traffic(rng, 800, drifted=("fr",)), "a", now)
    core.checkpoint()
    _send(core, b, *_traffic(rng, 800, drifted=("fr",)), "b", now)  # journal only
    before = core.evaluate(now=now + 1)["models"][KEY]["rolling"]
    hub.close(timeout=5)
    del core

    again, hub2 = _core(cfg, prof, Store(path))
    again.recover()
    after = again.evaluate(now=now + 1)["models"][KEY]["rolling"]
    strip = lambda segs: {c: [(e["segment"], e["rows"], e["requests"], (e["performance"] or {}).get("accuracy"))  # noqa: E731
                              for e in es] for c, es in segs.items()}
    assert strip(after["segments"]) == strip(before["segments"])
    assert after["fairness"]["country_group"]["groups"]["fr"]["true_positive_rate"] == \
        before["fairness"]["country_group"]["groups"]["fr"]["true_positive_rate"]
    hub2.close(timeout=5)


def test_refused_segment_parts_cost_only_themselves():
    prof, other = _profile(), _profile(seed=1)
    core, hub = _core(_cfg(), prof)
    rng = np.random.default_rng(6)
    payloads, results, labels = _traffic(rng, 300)
    good = flush(replica(_cfg(), prof), payloads, results, [f"q{i}" for i in range(300)])
    bad = flush(replica(_cfg(), other, "r2"), payloads, results, [f"p{i}" for i in range(300)])
    bad.summary = good.summary  # the model's summary is fine; its segments are of another profile
    now = time.time()
    assert core.ingest(good, now=now) == "ok" and core.ingest(bad, now=now) == "ok"
    st = core.evaluate(now=now + 1)["models"][KEY]
    assert st["refused"]["summaries"] == 1 and core.failures["ingest.segments"] == 1
    assert sum(e["rows"] for e in st["rolling"]["segments"]["country"]) == 300  # the good batch's
    assert st["totals"]["rows"] == 600  # and both batches' model-wide summaries
    hub.close(timeout=5)


def test_a_batch_that_overtakes_its_models_registration_keeps_its_segments():
    # a replica's first batch can reach the actor before its register_model call: the model has
    # no profile yet, and the batch's own summary says which profile its segments are of
    prof, other = _profile(), _profile(seed=1)
    cfg = MonitorConfig.model_validate(_cfg())
    hub = AlertingHub(registry=CollectorRegistry(), background=False)
    core = StatsCore(cfg, None, alerting=hub)
    rng = np.random.default_rng(7)
    payloads, results, labels = _traffic(rng, 300)
    first = flush(replica(_cfg(), prof), payloads, results, [f"a{i}" for i in range(300)])
    now = time.time()
    assert core.ingest(first, now=now) in ("ok", "reregister")
    core.register_model(KEY, cfg, prof.to_bytes())
    mixed = flush(replica(_cfg(), other, "r2"), payloads, results, [f"b{i}" for i in range(300)])
    mixed.summary = first.summary  # its segments are of another profile than its summary
    assert core.ingest(mixed, now=now) == "ok"
    st = core.evaluate(now=now + 1)["models"][KEY]
    assert core.failures.get("ingest.segments", 0) == 1 and st["refused"]["summaries"] == 1
    assert sum(e["rows"] for e in st["rolling"]["segments"]["country"]) == 300  # the first batch's
    hub.close(timeout=5)


def test_multiplexed_model_id_is_a_segment_without_configuration():
    prof = _profile()
    cfg = {"capture": {"feedback": True}, "drift": {"alpha": 0.01}}
    core, hub = _core(cfg, prof)
    rng = np.random.default_rng(8)
    payloads, results, labels = _traffic(rng, 1600)
    mids = [f"model-{i % 4}" for i in range(1600)]
    for p, m in zip(payloads, mids):
        if m == "model-3":  # the bad one: other inputs, slow and failing
            p["amount"] += 80.0
    lat = [0.5 if m == "model-3" else 0.01 for m in mids]
    outcomes = ["RuntimeError" if m == "model-3" and i % 5 == 0 else None for i, m in enumerate(mids)]
    now = time.time()
    b = flush(replica(cfg, prof), payloads, results, [f"q{i}" for i in range(1600)], model_ids=mids,
              latencies=lat, outcomes=outcomes)
    assert [c["name"] for c in b.segments["columns"]] == ["model_id"]
    core.ingest(b, now=now)
    segs = core.evaluate(now=now + 1)["models"][KEY]["rolling"]["segments"]["model_id"]
    assert segs[0]["segment"] == "model-3" and segs[0]["drifted_columns"] == ["amount"]
    assert segs[0]["error_rate"] == pytest.approx(0.2) and segs[0]["latency_p50_seconds"] > 0.4
    assert all(not e["drifted_columns"] and e["error_rate"] == 0 for e in segs[1:])
    hub.close(timeout=5)
