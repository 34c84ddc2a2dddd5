"""The stats actor's group commit as a pipeline, without a Ray cluster: the next group's
journal write starts before the group just written is merged (the write on the store's
writer thread, the merge on the event loop), groups are merged in the order written, each
call is answered only after its own group is written and merged, and a group whose write
failed costs only its own calls."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from rw_batches import make_batch, profile  # noqa: F401 (fixture)

from raywatch.actor.actor import StatsActor
from raywatch.aggregate.journal import StoreWriteError
from raywatch.config import MonitorConfig

T0 = time.time()


def actor_on(path):
    return StatsActor(MonitorConfig(model="m", windows={"evaluation_interval": 3600},
                                    actor={"sqlite_path": str(path), "metrics_port": None, "busy_timeout": 0.3}))


def instrument(a, first_write):
    """Record, in order, each journal write as it is handed to the writer thread and each
    merge; the first write waits for ``first_write`` (an Event) and, when it holds
    ``fail``, fails."""
    events = []
    real_rows, real_append, real_settle = a.core.journal_rows, a.core.store.append_journal, a.core.settle
    appended = []

    def journal_rows(tickets):
        events.append(("write", len(tickets)))
        return real_rows(tickets)

    def append(rows):
        appended.append(len(rows))
        if len(appended) == 1:
            assert first_write.wait(10)
            if getattr(first_write, "fail", False):
                raise OSError("disk full")
        return real_append(rows)

    def settle(tickets, last_id=None, error=None):
        events.append(("merge", len(tickets), error is None))
        return real_settle(tickets, last_id, error=error)

    a.core.journal_rows = journal_rows
    a.core.store.append_journal = append
    a.core.settle = settle
    return events


async def first_then_ten(a, events, gate):
    first = asyncio.ensure_future(a.ingest(make_batch(profile_of(a), n=5, seq=1, ts=T0)))
    while not events:  # the first call's write is under way (held by the gate)
        await asyncio.sleep(0.001)
    rest = [asyncio.ensure_future(a.ingest(make_batch(profile_of(a), n=5, seq=k, ts=T0))) for k in range(2, 12)]
    while len(a._queue) < 10:  # the ten others wait for the next write
        await asyncio.sleep(0.001)
    gate.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def profile_of(a):
    return a.core.models["app/Model"].profile


def test_next_group_is_written_while_the_last_one_merges(profile, tmp_path):
    a = actor_on(tmp_path / "s.sqlite")
    a.core.register_model("app/Model", {"model": "m"}, profile.to_bytes())
    gate = threading.Event()
    events = instrument(a, gate)
    replies = asyncio.run(first_then_ten(a, events, gate))
    assert replies == ["ok"] * 11
    # the second group's write started before the first group was merged; merged in order
    assert events == [("write", 1), ("write", 10), ("merge", 1, True), ("merge", 10, True)]
    assert a.core.status()["models"]["app/Model"]["totals"]["requests"] == 55
    assert a.core.journal.last_id == 11
    a.core.store.close()


def test_a_failed_group_costs_only_its_own_calls(profile, tmp_path):
    a = actor_on(tmp_path / "s.sqlite")
    a.core.register_model("app/Model", {"model": "m"}, profile.to_bytes())
    gate = threading.Event()
    gate.fail = True
    events = instrument(a, gate)
    replies = asyncio.run(first_then_ten(a, events, gate))
    assert isinstance(replies[0], StoreWriteError) and replies[1:] == ["ok"] * 10
    assert events == [("write", 1), ("write", 10), ("merge", 1, False), ("merge", 10, True)]
    assert a.core.status()["models"]["app/Model"]["totals"]["requests"] == 50
    # nothing of the failed call was merged: its retry is welcome, not a duplicate
    assert asyncio.run(a.ingest(make_batch(profile, n=5, seq=1, ts=T0))) == "ok"
    assert a.core.status()["models"]["app/Model"]["totals"]["requests"] == 55
    a.core.store.close()


@pytest.mark.parametrize("calls", [1, 3])
def test_every_call_is_answered_after_its_group_is_merged(profile, tmp_path, calls):
    a = actor_on(tmp_path / "s.sqlite")
    a.core.register_model("app/Model", {"model": "m"}, profile.to_bytes())

    async def main():
        out = []
        for k in range(calls):
            out.append(await a.ingest(make_batch(profile, n=4, seq=k + 1, ts=T0)))
            # answered: already merged, and the writer has nothing left behind it
            assert a.core.status()["models"]["app/Model"]["totals"]["requests"] == 4 * (k + 1)
        return out

    assert asyncio.run(main()) == ["ok"] * calls
    assert not a._queue
    a.core.store.close()


def test_a_write_that_cannot_start_fails_its_calls(profile, tmp_path):
    a = actor_on(tmp_path / "s.sqlite")
    a.core.register_model("app/Model", {"model": "m"}, profile.to_bytes())

    def gone(*args):
        raise RuntimeError("cannot schedule new futures after shutdown")

    a.core.store.submit = gone  # its writer thread is gone: a write cannot even be handed over

    async def main():
        return await asyncio.wait_for(a.ingest(make_batch(profile, n=5, seq=1, ts=T0)), 10)

    with pytest.raises(StoreWriteError):
        asyncio.run(main())
    assert a.core.status()["models"]["app/Model"]["totals"]["requests"] == 0
    a.core.store.close()
