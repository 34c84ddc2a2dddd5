"""The stats actor's class without a Ray cluster: how it wires its collaborators, and its
event loop (issue 11: nothing acknowledged before it is durable, writes off the loop).

* a configured file that cannot be opened: in memory, said in status, alerted —
  test_unwritable_sqlite_path_runs_in_memory_and_says_so
* a journal write that fails fails the call, off the event loop, with the short busy
  timeout; the retry is merged once — test_journal_write_off_the_loop_fails_the_call
* calls arriving together share one journal write (group commit) —
  test_group_commit_shares_one_write
* the replica's shipper keeps a batch whose ingest call failed and sends it again —
  test_shipper_retries_a_batch_the_journal_could_not_take
* an API listener beyond 127.0.0.1 without a usable token is refused at creation —
  test_open_door_is_refused_at_creation
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import contextmanager

import pytest
from rw_batches import make_batch, profile  # noqa: F401 (fixture)

from raywatch.actor.actor import StatsActor
from raywatch.aggregate.journal import StoreWriteError
from raywatch.config import ConfigError, MonitorConfig, parse_config
from raywatch.serve.shipper import Shipper

T0 = time.time()


def actor_on(path, **actor):
    a = {"sqlite_path": str(path), "metrics_port": None, "busy_timeout": 0.3}
    a.update(actor)
    return StatsActor(MonitorConfig(model="m", windows={"evaluation_interval": 3600}, actor=a))


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


def test_unwritable_sqlite_path_runs_in_memory_and_says_so(profile, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    a = StatsActor(MonitorConfig(actor={"sqlite_path": str(blocker / "stats.sqlite")}))
    assert a.core.store is None and a.core.failures == {"store.open": 1}
    a.core.register_model("app/Model", {"model": "m"}, profile.to_bytes())
    assert a.core.ingest(make_batch(profile, n=5, seq=1)) == "ok"
    st = a.core.evaluate()["actor"]
    assert st["store"]["mode"] == "memory" and st["store"]["path"] == str(blocker / "stats.sqlite")
    assert sorted(x["labels"]["alertname"] for x in st["alerts"]) == ["RaywatchStoreMemoryOnly", "Watchdog"]
    a.alerting.close(timeout=5)


def test_state_folder_and_dead_letters_are_owner_only(tmp_path):
    import os
    import stat

    folder = tmp_path / "state"
    a = actor_on(folder / "s.sqlite")
    assert a.alerting.dead_letter_dir == str(folder)  # dead letters live in the owner-only folder
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    a.core.store.close()


def test_journal_write_off_the_loop_fails_the_call(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    a = actor_on(path)
    a.core.register_model("app/Model", {"model": "m"}, profile.to_bytes())
    batch = make_batch(profile, n=20, seq=1, ts=T0)

    async def main():
        gaps = []

        async def ticker():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0.05)
        with locked(path):
            t0 = time.monotonic()
            with pytest.raises(StoreWriteError):
                await a.ingest(batch)
            waited = time.monotonic() - t0
        first = a.core.status()["models"]["app/Model"]["totals"]["requests"]
        again = await a.ingest(batch)
        tick.cancel()
        return gaps, waited, first, again

    gaps, waited, first, again = asyncio.run(main())
    assert 0.25 <= waited < 5.0  # the short busy timeout, not 10 s
    assert max(gaps) < 0.2, max(gaps)  # the loop kept running while the writer thread waited
    assert first == 0 and again == "ok"
    assert a.core.status()["models"]["app/Model"]["totals"]["requests"] == 20
    a.core.store.close()


def test_group_commit_shares_one_write(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    a = actor_on(path)
    a.core.register_model("app/Model", {"model": "m"}, profile.to_bytes())
    writes = []
    real = a.core.store.append_journal
    a.core.store.append_journal = lambda rows: (writes.append(len(rows)), real(rows))[1]

    async def main():
        return await asyncio.gather(*(a.ingest(make_batch(profile, n=5, seq=k, ts=T0)) for k in range(1, 21)))

    assert asyncio.run(main()) == ["ok"] * 20
    assert sum(writes) == 20 and len(writes) < 20
    assert a.core.status()["models"]["app/Model"]["totals"]["requests"] == 100
    a.core.store.close()


def test_shipper_retries_a_batch_the_journal_could_not_take(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    a = actor_on(path)
    a.core.register_model("app/Model", {"model": "m"}, profile.to_bytes())
    loop = asyncio.new_event_loop()

    class InProcess:
        """Calls the actor's ``ingest`` as Ray would: an exception fails the call."""

        def resolve(self):
            return a

        def send(self, handle, batch):
            try:
                return ("ok", loop.run_until_complete(handle.ingest(batch)))
            except Exception as exc:
                return ("raised", exc)

        def done(self, refs):
            return list(refs)

        def check(self, ref):
            kind, value = ref
            if kind == "raised":
                raise value
            return value

    t = [0.0]
    s = Shipper(InProcess(), retry_backoff=0.5, clock=lambda: t[0])
    s.submit(make_batch(profile, n=25, seq=1, ts=T0))
    with locked(path):
        s.pump()
        t[0] += 0.01
        s.pump()  # reaps the failed call: the batch waits to be sent again
        assert s.failures == 1 and len(s.pending) == 1 and s.acked_batches == 0
    t[0] += 1.0
    s.pump()
    t[0] += 0.01
    s.pump()
    assert s.acked_batches == 1 and not s.pending and not s.inflight and s.dropped_records == 0
    assert a.core.status()["models"]["app/Model"]["totals"]["requests"] == 25
    loop.close()
    a.core.store.close()


def test_open_door_is_refused_at_creation(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="api_host '0.0.0.0' is beyond 127.0.0.1: set api_token"):
        parse_config({"actor": {"api_host": "0.0.0.0"}}, source="m.yaml")
    monkeypatch.delenv("RW_UNSET_TOKEN", raising=False)
    unset: set = set()
    cfg = parse_config({"actor": {"api_host": "0.0.0.0", "api_token": "${RW_UNSET_TOKEN}", "sqlite_path": None}},
                       unset_env=unset)
    with pytest.raises(ValueError, match=r"\$\{RW_UNSET_TOKEN\} resolves to an empty value"):
        StatsActor(cfg)
