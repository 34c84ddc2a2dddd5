"""Nothing acknowledged before it is durable; a bad value costs only itself (issue 11).

Real SQLite files; a lock held by another connection makes the journal write fail.

* a journal write that fails fails the ingest call, nothing is merged, and the retry is
  merged once — test_failed_journal_write_fails_the_call_and_the_retry_is_merged_once
* (the replica's shipper keeping a batch whose ingest call failed: tests/actor/test_actor_local.py)
* labels: one that cannot be encoded costs only itself — test_one_bad_label_costs_only_itself
* a batch value that is no plain data costs only itself; checkpoints keep working and the
  journal is trimmed — test_a_batch_value_that_is_not_data_costs_only_itself
* the journal is trimmed only up to what every checkpoint row includes —
  test_journal_trimmed_only_to_what_every_checkpoint_row_includes
* the journal is bounded (config) and exported (series) — test_journal_is_bounded_and_exported
* recovery reads the journal a page at a time — test_recovery_streams_the_journal
* memory-only is said in status and raised as an alert; a repaired file too —
  test_memory_only_is_in_status_and_alerted, test_repaired_file_is_in_status_and_alerted
* a damaged ``models`` row costs the registration, not the model's figures (found by the
  fault campaign) — test_a_lost_registration_row_costs_the_registration_not_the_figures
* status counts the requests merged from each replica (what the campaign reconciles) —
  test_status_counts_the_requests_merged_from_each_replica
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from raywatch.aggregate import StatsCore, Store
from raywatch.aggregate import store as store_mod
from raywatch.aggregate.journal import JournalFull, StoreWriteError
from raywatch.alerts.hub import AlertingHub
from raywatch.config import MonitorConfig
from raywatch.stats.batch import REREGISTER

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

T0 = 1_000_000.0


def cfg(**actor):
    a = {"sqlite_path": None}
    a.update(actor)
    return MonitorConfig(windows={"length": 10.0, "rolling": 3, "grace": 0.0}, actor=a)


def core_on(path, profile=None, busy=0.2, **actor):
    c = StatsCore(cfg(**actor), Store(str(path), busy_timeout=busy))
    c.recover()
    if profile is not None:
        c.register_model("app/Model", {"model": "m", "version": "v1"}, profile.to_bytes(), now=T0)
    return c


@contextmanager
def locked(path):
    """Another process's write transaction on the file: SQLite writes wait, then fail."""
    other = sqlite3.connect(str(path), isolation_level=None, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def totals(c):
    return c.status()["models"]["app/Model"]["totals"]


def test_failed_journal_write_fails_the_call_and_the_retry_is_merged_once(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    b = make_batch(profile, n=40, seq=1, ts=T0 + 1)
    with locked(path):
        with pytest.raises(StoreWriteError):
            c.ingest(b, now=T0 + 1)
        assert totals(c)["requests"] == 0  # nothing merged, nothing acknowledged
        st = c.status()["actor"]["store"]
        assert st["last_write_error"] and st["write_failures"] == 1
        assert {s.name: s.value for s in c.health_series()}["store_write_failing"] == 1.0
    assert c.ingest(b, now=T0 + 2) == "ok"  # the retry is not taken for a duplicate
    assert c.ingest(b, now=T0 + 3) == "duplicate"
    assert totals(c)["requests"] == 40 and c.status()["actor"]["store"]["last_write_error"] is None
    again = core_on(path)  # and it is durable: a restart finds it in the journal
    assert totals(again)["requests"] == 40


def test_one_bad_label_costs_only_itself(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    c.ingest(make_batch(profile, n=3, seq=1, ts=T0 + 1, predictions=[("a", 1, 0.9), ("b", 0, 0.1)]), now=T0 + 1)
    out = c.feedback_items([("a", 1, "app/Model"), ("x", object(), "app/Model"), ("b", 0, None),
                            ("y", "z" * 10_000, None), ("w", 1, "app/Nope")], now=T0 + 2)
    assert out == {"accepted": 2, "joined": 2, "refused": {"not_plain": 1, "too_large": 1, "unknown_model": 1}}
    assert c.status()["actor"]["labels"]["refused"] == {"not_plain": 1, "too_large": 1, "unknown_model": 1}
    again = core_on(path)  # the good labels were journaled: a restart joins them again
    assert again.status()["models"]["app/Model"]["totals"]["feedback_rows"] == 2


def test_a_batch_value_that_is_not_data_costs_only_itself(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    b = make_batch(profile, n=30, seq=1, ts=T0 + 1, predictions=[("a", 1, 0.9), ("b", object(), 0.5)],
                   resources={"cpu_percent": 10.0, "rss_bytes": 5, "gpus": [], "weird": {1, 2}})
    assert c.ingest(b, now=T0 + 1) == "ok"
    m = c.status()["models"]["app/Model"]
    assert m["totals"]["requests"] == 30 and m["totals"]["predictions"] == 1 and m["refused"]["values"] == 2
    for k in range(2, 5):  # every checkpoint works, and trims the journal
        c.ingest(make_batch(profile, n=10, seq=k, ts=T0 + k), now=T0 + k)
        assert c.checkpoint(now=T0 + k)
        assert c.store.journal_size() == 0
    # a value that slipped into the state itself costs only itself too
    c.models["app/Model"].replicas["r1"].resources["odd"] = {3, 4}
    assert c.checkpoint(now=T0 + 6) and c.failures.get("checkpoint.value", 0) >= 1
    again = core_on(path)
    assert totals(again)["requests"] == 60


def test_journal_trimmed_only_to_what_every_checkpoint_row_includes(profile, tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    c.register_model("app/Other", {"model": "o"}, profile.to_bytes(), now=T0)
    for k in range(1, 4):
        c.ingest(make_batch(profile, n=10, seq=k, ts=T0 + k), now=T0 + k)
        c.ingest(make_batch(profile, n=7, seq=k, ts=T0 + k, deployment="Other"), now=T0 + k)
    assert c.checkpoint(now=T0 + 4)
    # from now on one model's state cannot be written: its row keeps the older checkpoint
    real = type(c.models["app/Other"]).state
    monkeypatch.setattr(type(c.models["app/Other"]), "state",
                        lambda self: (_ for _ in ()).throw(RuntimeError("boom")) if self.key == "app/Other" else real(self))
    for k in range(4, 6):
        c.ingest(make_batch(profile, n=10, seq=k, ts=T0 + k), now=T0 + k)
        c.ingest(make_batch(profile, n=7, seq=k, ts=T0 + k, deployment="Other"), now=T0 + k)
    assert c.checkpoint(now=T0 + 6) and c.failures["checkpoint.model"] == 1
    assert c.store.journal_size() == 4  # kept from the Other row's checkpoint on
    monkeypatch.undo()
    again = core_on(path)  # nothing lost, nothing counted twice
    st = again.status()["models"]
    assert st["app/Model"]["totals"]["requests"] == 50 and st["app/Other"]["totals"]["requests"] == 35


def test_journal_is_bounded_and_exported(profile, tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile, journal_max_bytes=1024 * 1024)
    seq = 0
    while c.store.journal_bytes < 1024 * 1024:
        seq += 1
        c.ingest(make_batch(profile, n=200, seq=seq, ts=T0 + 1), now=T0 + 1)
    series = {s.name: s.value for s in c.health_series(now=T0 + 1)}
    assert series["store_journal_bytes"] >= 1024 * 1024 and series["store_journal_entries"] == seq
    seq += 1  # at the bound: a checkpoint makes room, the call goes through
    assert c.ingest(make_batch(profile, n=200, seq=seq, ts=T0 + 1), now=T0 + 1) == "ok"
    assert c.store.journal_bytes < 1024 * 1024
    monkeypatch.setattr(c.store, "checkpoint", lambda *a, **k: (_ for _ in ()).throw(sqlite3.OperationalError("disk full")))
    while c.store.journal_bytes < 1024 * 1024:
        seq += 1
        c.ingest(make_batch(profile, n=200, seq=seq, ts=T0 + 1), now=T0 + 1)
    with pytest.raises(JournalFull):  # no room and none can be made: refused, the replica retries
        c.ingest(make_batch(profile, n=200, seq=seq + 1, ts=T0 + 1), now=T0 + 1)
    assert {s.name: s.value for s in c.health_series(now=T0 + 1)}["store_journal_full"] == 1.0
    assert c.status()["actor"]["store"]["journal_full"] is True


def test_recovery_streams_the_journal(profile, tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    for k in range(1, 41):
        c.ingest(make_batch(profile, n=2, seq=k, ts=T0 + 1), now=T0 + 1)
    monkeypatch.setattr(store_mod, "_JOURNAL_PAGE", 8)
    fetched = []
    real = Store.journal_after

    def spy(self, jid):
        for row in real(self, jid):
            fetched.append(row[0])
            yield row

    monkeypatch.setattr(Store, "journal_after", spy)
    again = core_on(path)
    assert totals(again)["requests"] == 80 and len(fetched) == 40


def test_memory_only_is_in_status_and_alerted(profile, tmp_path):
    err = PermissionError("read-only file system")
    hub = AlertingHub(registry=CollectorRegistry(), background=False)
    c = StatsCore(cfg(), None, alerting=hub, store_error=err, store_path=str(tmp_path / "s.sqlite"))
    c.register_model("app/Model", {"model": "m"}, profile.to_bytes())
    st = c.evaluate(now=T0)
    store = st["actor"]["store"]
    assert store["mode"] == "memory" and "read-only" in store["reason"]
    # the actor's own alerts: the store's, and its heartbeat (the Watchdog)
    assert sorted(a["labels"]["alertname"] for a in st["actor"]["alerts"]) == ["RaywatchStoreMemoryOnly", "Watchdog"]
    assert c.failures["store.open"] == 1
    hub.close(timeout=5)
    plain = StatsCore(cfg(), None)  # no file configured: in memory by choice, no alert
    assert plain.status()["actor"]["store"]["mode"] == "none"
    assert {s.name: s.value for s in plain.health_series(now=T0)}["store_memory_only"] == 0.0


def test_repaired_file_is_in_status_and_alerted(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    c.ingest(make_batch(profile, n=10, seq=1, ts=T0 + 1), now=T0 + 1)
    c.store.close()
    with open(path, "r+b") as fh:
        fh.write(b"garbage" * 10)
    hub = AlertingHub(registry=CollectorRegistry(), background=False)
    now = store_mod.time.time()
    c = StatsCore(cfg(), Store(str(path)), alerting=hub)
    c.recover()
    st = c.evaluate(now=now)["actor"]
    assert st["store"]["corrupt"] is True and st["store"]["repairs"][0]["kind"] == "corrupt"
    assert sorted(a["labels"]["alertname"] for a in st["alerts"]) == ["RaywatchStoreCorrupt", "Watchdog"]
    assert c.failures["store.corrupt"] == 1
    series = {s.name: s.value for s in c.health_series(now=now)}
    assert series["store_corrupt"] == 1.0 and series["store_repairs_total"] == 1.0
    # the alert resolves once the hold has passed
    st = c.evaluate(now=now + c.config.actor.store_alert_hold + 1)["actor"]
    assert [a["labels"]["alertname"] for a in st["alerts"]] == ["Watchdog"] and st["store"]["corrupt"] is False
    hub.close(timeout=5)


def test_a_model_the_actor_learnt_from_a_batch_asks_for_its_config(profile, tmp_path):
    c = core_on(tmp_path / "s.sqlite")  # e.g. after a repaired file: the replicas' models are unknown
    assert c.ingest(make_batch(profile, n=5, seq=1, ts=T0 + 1), now=T0 + 1) == REREGISTER
    c.register_model("app/Model", {"model": "m"}, profile.to_bytes(), now=T0 + 1)
    assert c.ingest(make_batch(profile, n=5, seq=2, ts=T0 + 2), now=T0 + 2) == "ok"
    assert np.isclose(totals(c)["requests"], 10)


def test_a_lost_registration_row_costs_the_registration_not_the_figures(profile, tmp_path):
    """Found by the fault campaign (benchmarks/faults.py, corrupt_store): a model's ``models``
    row (configuration and the profile's bytes: its largest row) is the likeliest to touch a
    damaged page. The store's repair salvages the ``state`` table, but recovery used to drop
    a checkpoint row whose model had no ``models`` row: a few damaged pages lost every figure.
    Now the model is restored from its checkpoint, and its replicas register it again."""
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    for k in range(1, 4):
        c.ingest(make_batch(profile, n=10, seq=k, replica="r1", ts=T0 + k, dropped_total=k), now=T0 + k)
    assert c.checkpoint(now=T0 + 4)
    c.ingest(make_batch(profile, n=7, seq=4, replica="r1", ts=T0 + 5), now=T0 + 5)  # in the journal only
    c.store.close()
    db = sqlite3.connect(str(path))
    with db:
        db.execute("DELETE FROM models")  # what a repair that could not salvage that row leaves
    db.close()
    again = core_on(path)
    st = again.status(now=T0 + 6)["models"]["app/Model"]
    assert st["totals"]["requests"] == 37 and st["totals"]["dropped"] == 3
    assert st["replicas"]["r1"]["requests"] == 37 and st["replicas"]["r1"]["max_seq"] == 4
    assert st["labels"]["model"] == "m" and st["registered"] is False and st["profile"] is False
    assert again.failures["recover.models"] == 1
    # a retried batch is still known; the next one asks the replica for its configuration and profile
    assert again.ingest(make_batch(profile, n=7, seq=4, replica="r1", ts=T0 + 5), now=T0 + 6) == "duplicate"
    assert again.ingest(make_batch(profile, n=5, seq=5, replica="r1", ts=T0 + 6), now=T0 + 6) == REREGISTER
    again.register_model("app/Model", {"model": "m", "version": "v1"}, profile.to_bytes(), now=T0 + 7)
    st = again.status(now=T0 + 7)["models"]["app/Model"]
    assert st["registered"] is True and st["profile"] is True and st["totals"]["requests"] == 42


def test_status_counts_the_requests_merged_from_each_replica(profile, tmp_path):
    """What the fault campaign reconciles per replica: served = merged + dropped (+ lost with a
    dead process). The per-replica count survives a restart (checkpoint and journal)."""
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    c.ingest(make_batch(profile, n=10, seq=1, replica="a", ts=T0 + 1), now=T0 + 1)
    c.ingest(make_batch(profile, n=4, seq=1, replica="b", ts=T0 + 1), now=T0 + 1)
    assert c.checkpoint(now=T0 + 2)
    c.ingest(make_batch(profile, n=6, seq=2, replica="a", ts=T0 + 2), now=T0 + 2)
    c.ingest(make_batch(profile, n=6, seq=2, replica="a", ts=T0 + 2), now=T0 + 2)  # a retry: not counted twice
    for core in (c, core_on(path)):
        reps = core.status(now=T0 + 3)["models"]["app/Model"]["replicas"]
        assert {r: v["requests"] for r, v in reps.items()} == {"a": 16, "b": 4}
