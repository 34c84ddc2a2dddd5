"""StatsCore without Ray: the stats actor's logic, with real profiles and replica batches.

What is checked (the Ray-level tests are in tests/actor):

* merge per model and tumbling window + rolling view, latency percentiles from the merged
  sketch, throughput, error rate, resources — test_windows_merge_and_figures,
  test_windows_close_into_history_and_rolling_view, test_models_are_kept_apart
* idempotent ingest by (replica_id, seq) — test_duplicate_batches_are_ignored
* totals reconcile: requests sent = requests ingested, drops from cumulative counters —
  test_drops_are_counted_from_cumulative_counters
* late and future batches — test_late_batch_goes_to_earliest_open_window
* feedback join both orders, per-window classification / regression metrics, concept drift
  from the error stream — test_feedback_*
* persistence: checkpoint + journal replay after a crash — test_recover_*
* the actor's own failures counted, never crash ingest — test_failures_are_counted_not_raised
* alert rules through the alerting hub, delivered to a webhook; a replaced alerting config
  resolves the old engine's alerts — test_drift_quality_rules_and_webhook_delivery,
  test_reconfigured_alerting_*, test_replaced_alerting_*
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from raywatch.aggregate import StatsCore, Store, history_from_sqlite
from raywatch.aggregate.windows import Window
from raywatch.alerts.hub import AlertingHub
from raywatch.aggregate.health import is_builtin
from raywatch.config import MonitorConfig
from raywatch.stats.sketch import LatencySketch

from rw_batches import WebhookReceiver, make_batch, profile, rows  # noqa: F401 (fixture)
from rw_test_support import wait_until

T0 = 1_000_000.0  # a multiple of the window length below


def cfg(**windows):
    w = {"length": 10.0, "rolling": 3, "grace": 0.0, "evaluation_interval": 1.0}
    w.update(windows)
    # the actor's own heartbeat (the Watchdog) off: these tests are about the models' alerts
    return MonitorConfig(windows=w, actor={"sqlite_path": None}, alerting={"watchdog": False})


def core_with(profile, store=None, **windows):
    c = StatsCore(cfg(**windows), store)
    c.register_model("app/Model", {"model": "m", "version": "v1"}, profile.to_bytes())
    return c


def test_windows_merge_and_figures(profile):
    c = core_with(profile)
    lat_a = np.random.default_rng(1).uniform(0.010, 0.020, 300)
    lat_b = np.random.default_rng(2).uniform(0.050, 0.100, 100)
    assert c.ingest(make_batch(profile, n=300, seq=1, replica="a", ts=T0 + 2, latencies=lat_a, errors=3), now=T0 + 3) == "ok"
    assert c.ingest(make_batch(profile, n=100, seq=1, replica="b", ts=T0 + 4, latencies=lat_b, errors=1,
                               resources={"cpu_percent": 80.0, "rss_bytes": 5, "gpus": []}), now=T0 + 5) == "ok"
    st = c.evaluate(now=T0 + 6)["models"]["app/Model"]
    w = st["window"]
    assert (w["start"], w["end"], w["requests"], w["errors"]) == (T0, T0 + 10, 400, 4)
    assert w["error_rate"] == pytest.approx(0.01)
    allv = np.concatenate([lat_a, lat_b])
    for key, q in (("latency_p50_seconds", 0.5), ("latency_p95_seconds", 0.95), ("latency_p99_seconds", 0.99)):
        assert w[key] == pytest.approx(np.quantile(allv, q), rel=0.03)
    roll = st["rolling"]
    # rolling throughput: from the first batch's start (T0+1) to the newest data (T0+4), or
    # to now - grace when that is later (grace is 0 here: to now, T0+6)
    assert roll["throughput_rps"] == pytest.approx(400 / 5.0)
    c.config.windows.grace = 5.0
    assert c.evaluate(now=T0 + 6)["models"]["app/Model"]["rolling"]["throughput_rps"] == pytest.approx(400 / 3.0)
    assert roll["rows"] == 400
    assert st["resources"]["cpu_percent"] == 80.0 and st["resources"]["replicas"] == 2
    assert st["totals"]["requests"] == 400 and st["totals"]["rows"] == 400


def test_windows_close_into_history_and_rolling_view(profile, tmp_path):
    store = Store(str(tmp_path / "s.sqlite"))
    c = core_with(profile, store)
    for k in range(5):  # one batch per window: T0, T0+10, ..., T0+40
        c.ingest(make_batch(profile, n=100, seq=k + 1, ts=T0 + 10 * k + 5), now=T0 + 10 * k + 5)
    st = c.evaluate(now=T0 + 45)["models"]["app/Model"]
    hist = c.history()["models"]["app/Model"]
    assert [w["start"] for w in hist["windows"]] == [T0, T0 + 10, T0 + 20, T0 + 30]
    assert all(w["requests"] == 100 and w["throughput_rps"] == 10.0 for w in hist["windows"])
    assert st["open_windows"] == [T0 + 40]
    # rolling = the last 3 windows (T0+20 .. T0+40), open one included
    assert st["rolling"]["requests"] == 300
    feats = hist["features"]
    assert set(feats) == {"amount", "age", "country"}
    assert sum(feats["age"]["current"]["counts"]) == 300
    assert feats["country"]["reference"]["categories"][-1] == "__other__"


def test_models_are_kept_apart(profile):
    c = core_with(profile)
    c.ingest(make_batch(profile, n=10, seq=1, deployment="Model"), now=T0)
    c.ingest(make_batch(profile, n=20, seq=1, deployment="Other"), now=T0)
    st = c.evaluate(now=T0 + 1)["models"]
    assert st["app/Model"]["totals"]["requests"] == 10
    assert st["app/Other"]["totals"]["requests"] == 20
    assert st["app/Other"]["labels"] == {"app": "app", "deployment": "Other", "model": "m", "version": "v1"}


def test_duplicate_batches_are_ignored(profile):
    c = core_with(profile)
    b = make_batch(profile, n=50, seq=7)
    assert c.ingest(b, now=T0) == "ok"
    assert c.ingest(b, now=T0) == "duplicate"
    assert c.ingest(make_batch(profile, n=50, seq=7, replica="other"), now=T0) == "ok"
    assert c.ingest(make_batch(profile, n=50, seq=3), now=T0) == "ok"  # out of order, not seen
    assert c.ingest(make_batch(profile, n=50, seq=3), now=T0) == "duplicate"
    t = c.status()["models"]["app/Model"]["totals"]
    assert (t["requests"], t["duplicates"], t["batches"]) == (150, 2, 3)


def test_drops_are_counted_from_cumulative_counters(profile):
    c = core_with(profile)
    sent = 0
    # replica r1 ships batches 1, 2, 4 (3 was lost: its records count in the next cumulative)
    for seq, n, dropped in ((1, 100, 0), (2, 100, 5), (4, 90, 25)):
        c.ingest(make_batch(profile, n=n, seq=seq, dropped_total=dropped, capture_errors_total=seq), now=T0)
        sent += n
    t = c.evaluate(now=T0 + 1)["models"]["app/Model"]["totals"]
    assert t["requests"] == 290 and t["dropped"] == 25 and t["capture_errors"] == 4
    names = {s.name: s.value for s in c.models["app/Model"].series}
    assert names["dropped_records_total"] == 25 and names["requests_total"] == 290


def test_late_batch_goes_to_earliest_open_window(profile):
    c = core_with(profile)
    c.ingest(make_batch(profile, n=10, seq=1, ts=T0 + 5), now=T0 + 5)
    c.ingest(make_batch(profile, n=10, seq=2, ts=T0 + 15), now=T0 + 15)
    c.evaluate(now=T0 + 12)  # closes [T0, T0+10)
    assert c.ingest(make_batch(profile, n=7, seq=3, ts=T0 + 8), now=T0 + 16) == "ok"  # late
    ms = c.models["app/Model"]
    assert ms.totals["late_batches"] == 1 and ms.open[T0 + 10].requests == 17
    assert c.ingest(make_batch(profile, n=1, seq=4, ts=T0 + 10_000), now=T0 + 16) == "ok"  # clock ahead
    assert ms.totals["future_batches"] == 1 and ms.open[T0 + 10].requests == 18
    assert ms.totals["requests"] == 28


def test_feedback_classification_both_orders(profile):
    c = core_with(profile)
    preds = [(f"q{i}", i % 2, 0.9 if i % 2 else 0.1) for i in range(20)]
    # labels for q0..q9 arrive before their predictions
    joined_early = [c.feedback(f"q{i}", i % 2, now=T0) for i in range(10)]
    assert not any(joined_early)
    c.ingest(make_batch(profile, n=20, seq=1, ts=T0 + 1, predictions=preds), now=T0 + 1)
    # q10..q19 after; q10, q12 wrong (label 1, predicted 0)
    late = [c.feedback(f"q{i}", 1 if i in (10, 12) else i % 2, now=T0 + 2) for i in range(10, 20)]
    assert all(late)
    st = c.evaluate(now=T0 + 3)["models"]["app/Model"]
    perf = st["performance"]
    assert perf["rows"] == 20
    assert perf["accuracy"] == pytest.approx(18 / 20)
    # positive = 1: tp = 10 (odd ids), fn = 2 (q10, q12), fp = 0
    assert perf["precision"] == pytest.approx(1.0)
    assert perf["recall"] == pytest.approx(10 / 12)
    assert perf["f1"] == pytest.approx(2 * 10 / (2 * 10 + 2))
    assert perf["roc_auc"] is not None
    assert st["totals"]["feedback_rows"] == 20
    fb = c.status()["actor"]["feedback"]
    assert fb["joined"] == 20 and fb["pending"] == {"predictions": 0, "labels": 0}


def test_feedback_regression_and_ttl(profile):
    c = StatsCore(MonitorConfig(windows={"length": 10, "grace": 0}, feedback={"task": "regression", "ttl": 30}, actor={"sqlite_path": None}))
    c.register_model("app/Reg", {"feedback": {"task": "regression"}}, profile.to_bytes())
    c.ingest(make_batch(profile, n=3, deployment="Reg", seq=1, ts=T0, predictions=[("a", 1.0, None), ("b", 2.0, None), ("c", 5.0, None)]), now=T0)
    assert c.feedback("a", 2.0, now=T0 + 1) and c.feedback("b", 2.0, now=T0 + 1)
    st = c.evaluate(now=T0 + 2)["models"]["app/Reg"]
    assert st["performance"]["mae"] == pytest.approx(0.5)
    assert st["performance"]["rmse"] == pytest.approx(math.sqrt(0.5))
    c.evaluate(now=T0 + 100)  # "c" waited longer than the TTL
    fb = c.status()["actor"]["feedback"]
    assert fb["expired_predictions"] == 1 and fb["pending"]["predictions"] == 0
    assert not c.feedback("c", 5.0, now=T0 + 101)  # too late: waits as a label now


def test_concept_drift_from_error_stream(profile):
    c = StatsCore(cfg())
    c.register_model("app/Model", {"detectors": {"concept": {"method": "ddm"}}}, profile.to_bytes())
    rng = np.random.default_rng(3)
    n = 3000
    preds = [(f"id{i}", 1, 0.8) for i in range(n)]
    c.ingest(make_batch(profile, n=n, seq=1, ts=T0, predictions=preds), now=T0)
    for i in range(n):
        wrong = rng.random() < (0.05 if i < n // 2 else 0.6)  # the model goes bad halfway
        c.feedback(f"id{i}", 0 if wrong else 1, now=T0 + 1)
    st = c.evaluate(now=T0 + 2)["models"]["app/Model"]
    assert st["detectors"]["concept"]["drift"] is True
    assert {s.name: s.value for s in c.models["app/Model"].series}["concept_drift"] == 1.0


def test_recover_from_checkpoint_and_journal(profile, tmp_path):
    path = str(tmp_path / "s.sqlite")
    c = core_with(profile, Store(path))
    for k in range(1, 4):
        c.ingest(make_batch(profile, n=100, seq=k, ts=T0 + k), now=T0 + k)
    c.checkpoint()
    for k in range(4, 6):  # after the checkpoint: only in the journal
        c.ingest(make_batch(profile, n=100, seq=k, ts=T0 + k, dropped_total=k), now=T0 + k)
    c.feedback("x", 1, now=T0 + 6)  # journaled too
    before = c.evaluate(now=T0 + 7)["models"]["app/Model"]
    del c  # the process dies without a final checkpoint

    r = StatsCore(cfg(), Store(path))
    stats = r.recover()
    assert stats["replayed"] == 3
    after = r.evaluate(now=T0 + 7)["models"]["app/Model"]
    for k in ("requests", "rows", "dropped", "batches"):
        assert after["totals"][k] == before["totals"][k]
    assert after["totals"]["requests"] == 500
    assert after["window"]["latency_p99_seconds"] == before["window"]["latency_p99_seconds"]
    assert r.status()["actor"]["feedback"]["pending"]["labels"] == 1
    # a replica retrying a batch the dead actor had journaled is recognised as a duplicate
    assert r.ingest(make_batch(profile, n=100, seq=5, ts=T0 + 5), now=T0 + 8) == "duplicate"


def test_failures_are_counted_not_raised(profile):
    c = core_with(profile)
    bad = make_batch(profile, n=10, seq=1)
    bad.summary = b"not a summary"
    assert c.ingest(bad, now=T0) == "ok"  # counters still merged, the summary is the failure
    assert c.failures.get("ingest.summary") == 1
    assert c.ingest({"nonsense": 1}, now=T0) == "error"
    assert c.failures.get("ingest.decode") == 1
    assert c.status()["models"]["app/Model"]["totals"]["requests"] == 10


def test_sketch_percentiles_merge_exactly_across_replicas(profile):
    c = core_with(profile)
    parts = [np.random.default_rng(i).exponential(0.02, 500) for i in range(4)]
    for i, p in enumerate(parts):
        c.ingest(make_batch(profile, n=500, seq=1, replica=f"r{i}", latencies=p), now=T0)
    one = LatencySketch()
    one.add_many(np.concatenate(parts))
    w = c.models["app/Model"].open[T0]
    a, b = w.latency.to_dict(), one.to_dict()
    assert a.pop("sum") == pytest.approx(b.pop("sum"))
    assert a == b  # bucket for bucket


def test_drift_quality_rules_and_webhook_delivery(profile, tmp_path):
    """Drift against the reference profile → dataset_drift series → rule fires → the webhook
    receives the alert; the transition is in the history."""
    recv = WebhookReceiver("/hook")
    try:
        config = {
            "model": "m",
            "alerting": {
                "rules": [{"name": "DataDrift", "expr": "dataset_drift > 0", "severity": "critical",
                           "annotations": {"summary": "{{ $labels.model }} drifted"}}],
                "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1s"},
                "sinks": [{"name": "hook", "type": "webhook", "url": recv.url}],
            },
        }
        c = StatsCore(cfg(), Store(str(tmp_path / "s.sqlite")), alerting=AlertingHub())
        c.register_model("app/Model", config, profile.to_bytes())
        for k in range(1, 6):
            c.ingest(make_batch(profile, n=400, seq=k, ts=T0 + k), now=T0 + k)
        st = c.evaluate(now=T0 + 6)["models"]["app/Model"]
        assert st["drift"]["dataset_drift"] is False and st["alerts"] == []
        assert set(st["drift"]["columns"]) == {"amount", "age", "country"}
        assert set(st["quality"]["age"]) >= {"missing_share", "out_of_range_share"}
        for k in range(6, 16):  # drift injected: 4000 drifted rows in the next window
            c.ingest(make_batch(profile, n=400, seq=k, ts=T0 + 10 + k - 5, drift=True), now=T0 + 10 + k - 5)
        st = c.evaluate(now=T0 + 21)["models"]["app/Model"]
        assert st["drift"]["dataset_drift"] is True
        assert st["drift"]["columns"]["age"]["drifted"] is True
        names = {(s.name, s.labels.get("feature")) for s in c.models["app/Model"].series}
        assert ("drift_detected", "age") in names and ("dataset_drift", None) in names
        assert [a["labels"]["alertname"] for a in st["alerts"]] == ["DataDrift"]
        eng = next(iter(c.alerting.engines.values()))
        assert eng.wait_idle(timeout=20)
        deadline = time.time() + 20
        while not recv.received and time.time() < deadline:
            time.sleep(0.1)
        body = recv.received[0]
        assert body["version"] == "4" and body["status"] == "firing"
        assert body["alerts"][0]["labels"]["alertname"] == "DataDrift"
        assert body["alerts"][0]["labels"]["deployment"] == "Model"
        hist = c.history()
        assert [(a["alertname"], a["state"]) for a in hist["alerts"]] == [("DataDrift", "firing")]
        # alert engine state survives a restart (no second "firing" transition)
        c.checkpoint()
        r = StatsCore(cfg(), Store(str(tmp_path / "s.sqlite")), alerting=AlertingHub())
        r.recover()
        r.evaluate(now=T0 + 22)
        assert [a["labels"]["alertname"] for a in r.alerts()] == ["DataDrift"]
        assert [(a["alertname"], a["state"]) for a in r.history()["alerts"]] == [("DataDrift", "firing")]
        for hub in (c.alerting, r.alerting):
            hub.close(timeout=5)
    finally:
        recv.close()


def test_deferred_summary_merge_equals_eager_merge(profile):
    parts = [profile.summarize(rows(n, seed=n, drift=n % 3 == 0), seed=n) for n in range(1, 140)]
    eager = parts[0]
    for p in parts[1:]:
        eager = eager.merge(p)
    w = Window(0.0, 10.0)
    for p in parts:  # 139 summaries: two automatic merges at 64, the rest on read
        w.add_summary(p)
    assert w.summary == eager
    assert w.rows == sum(range(1, 140))


def test_rolling_view_keeps_the_closed_windows_merge_and_equals_a_fresh_merge(profile):
    """The rolling view's closed windows are merged once (they never change) and kept until
    the view moves on; the view equals merging every window afresh, in order."""
    c = core_with(profile, length=10.0, rolling=3, grace=0.0)
    ms = c.models["app/Model"]
    ev = c._evaluator
    for k in range(1, 9):  # batches every 5 s from two replicas, some with errors and drift
        now = T0 + 5.0 * k
        for i, r in enumerate("ab"):  # each replica its own sample keys (no ties between them)
            c.ingest(make_batch(profile, n=50 + 10 * k, seq=k, replica=r, ts=now - 0.5, errors=k % 2,
                                drift=k > 4 and r == "b", seed=2 * k + i), now=now)
        c.evaluate(now=now)
        view, _ = ev.rolling(ms, now)
        horizon = now - now % 10.0 - 20.0
        fresh = Window.merged([w for w in ms.closed if w.start >= horizon]
                              + [ms.open[s] for s in sorted(ms.open) if s >= horizon])
        assert view.summary == fresh.summary and view.rows == fresh.rows
        assert view.figures(30.0) == fresh.figures(30.0)
        assert (view.batches, view.first_ts, view.last_ts) == (fresh.batches, fresh.first_ts, fresh.last_ts)
        done = [w for w in ms.closed if w.start >= horizon]
        if len(done) > 1:
            assert ms.closed_view is not None and list(ms.closed_view[0]) == done
            kept = ms.closed_view[1]
            ev.rolling(ms, now)
            assert ms.closed_view[1] is kept  # not merged again


def test_config_with_masked_secrets_takes_the_actors_own(profile):
    """A model config that went through JSON has "**********" for secrets; the actor keeps the
    real ones it was created with (and counts the problem when it has none to offer)."""
    alerting = {"rules": [{"name": "Slow", "expr": "latency_p99_seconds > 1"}],
                "sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/secret-token"}]}
    real = MonitorConfig(alerting=alerting, actor={"sqlite_path": None})
    dumped = json.loads(real.model_dump_json())
    assert dumped["alerting"]["sinks"][0]["url"] == "**********"
    c = StatsCore(real)
    c.register_model("app/Model", dumped, profile.to_bytes())
    assert c.models["app/Model"].config.alerting.sinks[0].url.get_secret_value() == "http://127.0.0.1:9/secret-token"
    assert c.failures == {}
    bare = StatsCore(MonitorConfig(actor={"sqlite_path": None}))
    bare.register_model("app/Model", dumped, profile.to_bytes())
    assert bare.failures == {"register.secrets": 1}


def test_history_from_sqlite_without_ray(profile, tmp_path):
    path = str(tmp_path / "s.sqlite")
    c = core_with(profile, Store(path))
    for k in range(3):
        c.ingest(make_batch(profile, n=50, seq=k + 1, ts=T0 + 10 * k + 1), now=T0 + 10 * k + 1)
    c.evaluate(now=T0 + 25)
    live = c.history()
    offline = history_from_sqlite(path)
    assert [w["start"] for w in offline["models"]["app/Model"]["windows"]] == [T0, T0 + 10]
    assert offline["models"]["app/Model"]["windows"] == live["models"]["app/Model"]["windows"]
    assert offline["models"]["app/Model"]["labels"] == live["models"]["app/Model"]["labels"]
    assert sum(offline["models"]["app/Model"]["features"]["age"]["current"]["counts"]) == 150
    assert Store(path).journal_size() == 3  # read-only: nothing replayed into the file
    with pytest.raises(FileNotFoundError):
        history_from_sqlite(str(tmp_path / "missing.sqlite"))


def test_routes_and_methods_are_merged(profile):
    c = core_with(profile)
    a = make_batch(profile, n=10, seq=1, replica="a")
    a.routes, a.methods = {"/score/{channel}": 9, "/boom": 1}, {"__call__": 10}
    b = make_batch(profile, n=5, seq=1, replica="b")
    b.routes, b.methods = {"/score/{channel}": 5}, {"__call__": 3, "explain": 2}
    c.ingest(a, now=T0)
    c.ingest(b, now=T0)
    w = c.evaluate(now=T0 + 1)["models"]["app/Model"]["window"]
    assert w["routes"] == {"/score/{channel}": 14, "/boom": 1}
    assert w["methods"] == {"__call__": 13, "explain": 2}


def test_reconfigured_alerting_retires_the_old_engine(profile):
    def alerting(threshold):
        return {"alerting": {"rules": [{"name": "Errors", "metric": "error_rate", "op": ">", "threshold": threshold}],
                             "sinks": [{"name": "log", "type": "log"}]}}

    hub = AlertingHub()
    c = StatsCore(cfg(), alerting=hub)
    c.register_model("app/Model", alerting(0.5), profile.to_bytes())
    c.ingest(make_batch(profile, n=100, seq=1, errors=20, ts=T0), now=T0)
    c.evaluate(now=T0 + 1)
    assert len(model_engines(hub)) == 1 and c.alerts() == []
    old = next(iter(model_engines(hub).values()))
    c.register_model("app/Model", alerting(0.1), profile.to_bytes())  # the threshold changed (hot reload)
    c.evaluate(now=T0 + 2)
    assert len(model_engines(hub)) == 1 and next(iter(model_engines(hub).values())) is not old
    assert [a["labels"]["alertname"] for a in c.alerts()] == ["Errors"]  # 0.2 > 0.1 now
    hub.close(timeout=5)


def test_replaced_alerting_resolves_the_old_engines_alerts_at_once(profile, tmp_path):
    """A hot-reloaded alerting config does not leave the old config's alerts open at the
    receivers: they hear "resolved" (with the reason) without waiting for a group interval,
    and the history says so; the new config's own alert is a new one."""
    recv = WebhookReceiver("/hook")

    def alerting(threshold, group_interval="1h"):
        return {"alerting": {
            "rules": [{"name": "Errors", "metric": "error_rate", "op": ">", "threshold": threshold}],
            "route": {"receiver": "hook", "group_wait": "0s", "group_interval": group_interval},
            "sinks": [{"name": "hook", "type": "webhook", "url": recv.url}]}}

    try:
        hub = AlertingHub()
        c = StatsCore(cfg(), Store(str(tmp_path / "s.sqlite")), alerting=hub)
        c.register_model("app/Model", alerting(0.1), profile.to_bytes())
        c.ingest(make_batch(profile, n=100, seq=1, errors=20, ts=T0), now=T0)
        c.evaluate(now=T0 + 1)
        assert [a["labels"]["alertname"] for a in c.alerts()] == ["Errors"]
        old = next(iter(model_engines(hub).values()))
        assert old.wait_idle(timeout=20)
        wait_until(lambda: recv.received, timeout=20, interval=0.05, what="the firing notification")
        assert recv.received[0]["status"] == "firing"
        # raised above the error rate (0.2): the old alert is over, and no new one fires
        c.register_model("app/Model", alerting(0.5, "2h"), profile.to_bytes())
        c.evaluate(now=T0 + 2)
        assert c.alerts() == [] and next(iter(model_engines(hub).values())) is not old
        body = wait_until(lambda: recv.received[1:] and recv.received[1], timeout=20, interval=0.05,
                          what="the resolved notification")
        assert body["status"] == "resolved"
        (entry,) = body["alerts"]
        assert entry["labels"]["alertname"] == "Errors" and entry["status"] == "resolved"
        assert entry["annotations"]["resolved_reason"] == "alerting configuration replaced"
        assert [(a["alertname"], a["state"]) for a in c.history()["alerts"]] == [("Errors", "firing"),
                                                                                 ("Errors", "resolved")]
        hub.close(timeout=5)
    finally:
        recv.close()


def model_engines(hub):
    """The hub's engines of the models' alerting (the built-in engine on the actor's own
    health, which every evaluation runs, aside)."""
    return {k: e for k, e in hub.engines.items() if not is_builtin(e.cfg)}
