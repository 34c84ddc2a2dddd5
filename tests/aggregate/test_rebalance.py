"""Adding a shard at run time: the models whose owner changes are handed over with their
windows, batches still sent to the old shard are passed on, and every model's figures equal
those of one shard that held it all along (nothing lost, nothing counted twice)."""

from __future__ import annotations

import json

import pytest

from raywatch.actor.sharding import shard_for
from raywatch.aggregate import StatsCore
from raywatch.aggregate import rebalance
from raywatch.config import MonitorConfig

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

T0 = 1_000_000.0
KEYS = [f"app/model-{i:02d}" for i in range(16)]


def cfg():
    return MonitorConfig(windows={"length": 10.0, "rolling": 3, "grace": 0.0, "evaluation_interval": 1.0},
                         actor={"sqlite_path": None})


def figures(core, key):
    st = core.status(key)["models"][key]
    out = {k: st[k] for k in ("window", "rolling", "totals", "labels")}
    return json.loads(json.dumps(out))


def send(cores, key, batch, now, shards):
    """What a replica does (place the model with the shard count it knows), and what the
    stats actor's shell does with a batch for a model it handed over (pass it on)."""
    core = cores[shard_for(key, shards)]
    to = rebalance.owner(core, batch)
    if to is not None:
        core = next(c for c in cores if c.name == to)
        assert rebalance.owner(core, batch) is None
    return core.ingest(batch, now=now)


def test_adding_a_shard_moves_only_the_models_whose_owner_changes_with_their_windows(profile):
    truth = StatsCore(cfg(), name="truth")
    cores = [StatsCore(cfg(), shard=i, name=f"raywatch-stats-{i}") for i in range(3)]
    blob = profile.to_bytes()
    for key in KEYS:
        truth.register_model(key, {"model": "m"}, blob)
        cores[shard_for(key, 2)].register_model(key, {"model": "m"}, blob)
    shards, seq = 2, 0
    for step in range(14):  # every 2.5 s, two replicas a model; the third shard comes at 15 s
        now = T0 + 2.5 * (step + 1)
        if step == 6:
            planned = rebalance.moves(KEYS, 2, 3, shard_for)
            assert planned and any(b < 2 for _, _, b in planned)  # modulo placement: between the old ones too
            assert {k for k, _, _ in planned} == {k for k in KEYS if shard_for(k, 3) != shard_for(k, 2)}
            for c in cores:
                c.evaluate(now=now)
            before = {k: figures(cores[a], k) for k, a, _ in planned}
            for key, a, b in planned:
                rebalance.hand_over(cores[a], cores[b], key, now=now)
            for key, a, b in planned:  # the new owner holds the same windows and totals
                assert key not in cores[a].models and cores[a].moved[key] == cores[b].name
                cores[b].evaluate(now=now)
                assert figures(cores[b], key) == before[key]
            shards = 3
        for m, key in enumerate(KEYS):
            for r in range(2):
                seq += 1
                app, _, dep = key.partition("/")
                b = make_batch(profile, n=40 + m, seq=seq, replica=f"{dep}-r{r}", app=app, deployment=dep,
                               ts=now - 0.2, errors=(seq % 5 == 0), drift=m % 4 == 0 and step > 8, seed=seq)
                # replica 0 still places with 2 shards (its old configuration), replica 1 with the new count
                assert send(cores, key, b, now, 2 if r == 0 else shards) == "ok"
                assert truth.ingest(b, now=now) == "ok"
        truth.evaluate(now=now)
        for c in cores:
            c.evaluate(now=now)
    for key in KEYS:
        holder = cores[shard_for(key, 3)]
        assert [c.name for c in cores if key in c.models] == [holder.name]
        assert figures(holder, key) == figures(truth, key), key
        assert figures(holder, key)["totals"]["requests"] == sum(40 + KEYS.index(key) for _ in range(28))


def test_a_handover_record_is_data_and_a_batch_taken_early_is_kept(profile):
    a, b = StatsCore(cfg(), shard=0, name="s0"), StatsCore(cfg(), shard=1, name="s1")
    a.register_model("app/m", {"model": "m", "version": "v2"}, profile.to_bytes())
    a.ingest(make_batch(profile, n=100, seq=1, replica="r0", deployment="m", ts=T0 + 1), now=T0 + 1)
    b.ingest(make_batch(profile, n=30, seq=1, replica="r1", deployment="m", ts=T0 + 2), now=T0 + 2)  # a new replica, first
    data = rebalance.export_model(a, "app/m")
    assert json.dumps(json.loads(json.dumps(data))) == json.dumps(data) and data["format"] == rebalance.FORMAT
    rebalance.import_model(b, data, now=T0 + 3)
    rebalance.forget(a, "app/m", "s1")
    b.evaluate(now=T0 + 3)
    st = b.status("app/m")["models"]["app/m"]
    assert st["window"]["requests"] == 130 and st["totals"]["requests"] == 130
    assert st["labels"]["version"] == "v1" and b.models["app/m"].profile is not None  # the batches say v1
    with pytest.raises(ValueError):
        rebalance.import_model(b, dict(data, version=99))


def test_a_batch_still_being_journaled_when_the_handover_arrives_is_merged_into_it(profile):
    """A batch the new shard took before the hand-over (its journal entry still being written,
    so not merged yet) is merged into the imported state, not into the early state the import
    replaced; and the early batches' replica memory carries over (their retries are duplicates).
    Found on real Ray under load: 60 requests of one moved model were acknowledged and lost."""
    truth = StatsCore(cfg(), name="truth")
    a, b = StatsCore(cfg(), shard=0, name="s0"), StatsCore(cfg(), shard=1, name="s1")
    for core in (truth, a):
        core.register_model("app/m", {"model": "m"}, profile.to_bytes())
    batches = [make_batch(profile, n=10 * (i + 1), seq=i + 1, replica="r0", deployment="m", ts=T0 + i, errors=i)
               for i in range(5)]
    for bt in batches:
        truth.ingest(bt, now=T0 + 5)
    for bt in batches[:2]:
        a.ingest(bt, now=T0 + 5)
    assert b.ingest(batches[2], now=T0 + 5) in ("ok", "reregister")  # passed on early: merged at once
    pending = [b.admit(bt, now=T0 + 5) for bt in batches[3:]]  # passed on early: journal writes under way
    rebalance.import_model(b, rebalance.export_model(a, "app/m"), now=T0 + 6)
    rebalance.forget(a, "app/m", "s1")
    b.settle(pending)
    assert b.ingest(batches[2], now=T0 + 7) == "duplicate" and b.ingest(batches[4], now=T0 + 7) == "duplicate"
    for core in (truth, b):
        core.evaluate(now=T0 + 8)
    got, want = figures(b, "app/m"), figures(truth, "app/m")
    assert got["window"]["requests"] == want["window"]["requests"] == 150
    assert dict(got["totals"], duplicates=0) == want["totals"] and got["totals"]["duplicates"] == 2
    assert got["totals"]["errors_by_type"] == want["totals"]["errors_by_type"] and sum(want["totals"]["errors_by_type"].values())


def test_the_feedback_join_of_a_moved_model_goes_with_it(profile):
    """Predictions waiting for their labels and a label waiting for its prediction travel in the
    hand-over record: labels for predictions made before the move join at the new owner, a
    prediction arriving there meets the label that waited on the old shard, the old shard keeps
    none of them, and the figures equal those of one shard that held the model all along."""
    key, blob = "app/Model", profile.to_bytes()
    truth = StatsCore(cfg(), name="truth")
    src, dst = StatsCore(cfg(), shard=0, name="s-0"), StatsCore(cfg(), shard=1, name="s-1")
    for c in (truth, src):
        c.register_model(key, {"model": "m"}, blob)
    preds = [(f"req-{i}", i % 2, 0.8 if i % 2 else 0.3) for i in range(6)]
    first = make_batch(profile, n=50, seq=1, predictions=preds, ts=T0 + 1)
    for c in (truth, src):
        assert c.ingest(first, now=T0 + 1) == "ok"
        assert c.feedback("req-0", 0, key, now=T0 + 2)  # joins where it is
        assert not c.feedback("req-late", 1, key, now=T0 + 2)  # its prediction has not come yet
    rec = rebalance.export_model(src, key)
    assert len(rec["feedback"]["predictions"]) == 5 and [r for r, _ in rec["feedback"]["labels"]] == ["req-late"]
    json.dumps(rec)  # data
    rebalance.hand_over(src, dst, key, now=T0 + 3)
    assert src.joiner.pending() == {"predictions": 0, "labels": 0}
    assert dst.joiner.pending() == {"predictions": 5, "labels": 1}
    for i in range(1, 6):  # labels for predictions made before the move
        for c in (truth, dst):
            assert c.feedback(f"req-{i}", 1, key, now=T0 + 4)
    late = make_batch(profile, n=20, seq=2, predictions=[("req-late", 1, 0.7)], ts=T0 + 5)
    for c in (truth, dst):
        assert c.ingest(late, now=T0 + 5) == "ok"  # meets the label that waited on the old shard
        c.evaluate(now=T0 + 6)
    assert dst.joiner.pending() == truth.joiner.pending() == {"predictions": 0, "labels": 0}
    assert figures(dst, key) == figures(truth, key)
    assert figures(dst, key)["totals"]["feedback_rows"] == 7


def test_a_carried_entry_meets_a_label_already_at_the_new_owner_and_keeps_the_bounds(profile):
    """A label addressed to the model that reached the new owner before the hand-over joins
    the carried prediction at import; carried entries obey the new owner's bounds (the oldest
    predictions evicted and counted)."""
    from raywatch.aggregate.joiner import FeedbackJoiner

    src = FeedbackJoiner(max_pending=10)
    for i in range(8):
        src.add_prediction(f"p{i}", "a/m", i % 2, None, now=float(i))
    src.add_label("w", 1, "a/m", now=9.0)
    src.add_prediction("other", "a/other", 1, None, now=9.0)
    entries = src.export_model("a/m")
    dst = FeedbackJoiner(max_pending=5)
    dst.add_label("p7", 1, "a/m", now=10.0)  # arrived first
    joined = dst.import_model("a/m", entries)
    assert [(j.request_id, j.label, j.prediction) for j in joined] == [("p7", 1, 1)]
    assert dst.pending() == {"predictions": 5, "labels": 1}  # p2..p6 kept of p0..p6, and the label "w"
    assert dst.counters()["evicted_predictions"] == 2 and dst.counters()["joined"] == 1
    assert dst.import_model("a/other", entries) == [] and dst.pending()["predictions"] == 5  # another model's: ignored


def test_a_firing_alert_goes_with_its_model_neither_resolving_nor_firing_again(profile, monkeypatch):
    """The model's alerts travel in the hand-over record: the old shard gives them up without
    a word, the new one goes on with them and with what its receivers were told, so the
    webhook hears "firing" once (before the move) and "resolved" once (from the new owner)."""
    from rw_batches import WebhookReceiver

    from raywatch.alerts.hub import AlertingHub

    recv = WebhookReceiver("/hook")
    monkeypatch.setenv("RW_TEST_HANDOVER_HOOK", recv.url)  # a secret travels as its reference
    key = next(k for k in KEYS if shard_for(k, 2) == 1)
    app, _, dep = key.partition("/")
    config = {"model": "m", "alerting": {
        "rules": [{"name": "HighErrors", "expr": "error_rate > 0.1"}],
        "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1s", "group_by": ["alertname", "deployment"]},
        "sinks": [{"name": "hook", "type": "webhook", "url": "${RW_TEST_HANDOVER_HOOK}"}]}}
    cores = [StatsCore(cfg(), shard=i, name=f"raywatch-stats-{i}", alerting=AlertingHub(background=False)) for i in range(2)]
    seq = 0

    def feed(core, now, errors):
        nonlocal seq
        seq += 1
        assert core.ingest(make_batch(profile, n=50, seq=seq, app=app, deployment=dep, ts=now - 0.5, errors=errors),
                           now=now) == "ok"

    def told(core):  # what the receiver accepted (a delivery ends after its reply: wait_idle covers it)
        for eng in core.alerting.engines.values():
            assert eng.wait_idle(timeout=20)
        return [(b["status"], [a["labels"]["alertname"] for a in b["alerts"]]) for b in recv.received]

    try:
        cores[0].register_model(key, config, profile.to_bytes(), now=T0)
        for step in range(3):
            feed(cores[0], T0 + 1 + step, errors=20)
        cores[0].evaluate(now=T0 + 4)
        assert told(cores[0]) == [("firing", ["HighErrors"])]
        fired = cores[0].alerts(key)[0]
        rebalance.hand_over(cores[0], cores[1], key, now=T0 + 5)
        assert cores[0].alerts(key) == [] and cores[0].alerting.take_model(key) == {}
        moved = cores[1].alerts(key)
        assert [(a["labels"]["alertname"], a["state"], a["active_at"]) for a in moved] == [
            ("HighErrors", "firing", fired["active_at"])]
        cores[0].evaluate(now=T0 + 6)  # the old shard: nothing resolves
        feed(cores[1], T0 + 7, errors=20)
        cores[1].evaluate(now=T0 + 8)  # the new owner: nothing fires again
        assert told(cores[1]) == [("firing", ["HighErrors"])]
        for step in range(5):  # the errors stop and roll out of the view: resolved, by the new owner
            feed(cores[1], T0 + 20 + 10 * step, errors=0)
            cores[1].evaluate(now=T0 + 20.5 + 10 * step)
        assert told(cores[1]) == [("firing", ["HighErrors"]), ("resolved", ["HighErrors"])]
    finally:
        for c in cores:
            c.alerting.close(timeout=5)
        recv.close()
