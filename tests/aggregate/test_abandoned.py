"""Abandoned batches: a replica gave up on a batch after sending it (the call timed out, or the
actor died after storing it and before answering), so it cannot know whether the batch was
stored. It reports ``[seq, requests]`` on later batches (``ReplicaBatch.abandoned``); the actor
counts the requests as dropped only for a seq it never stored, and refuses that seq afterwards.
Every request is then counted once: sent = stored + dropped, in any order of arrival, across a
restart from checkpoint and journal."""

from __future__ import annotations

import pytest

from raywatch.aggregate import StatsCore, Store
from raywatch.config import MonitorConfig
from raywatch.stats.batch import MAX_ABANDONED
from rw_batches import make_batch

T0 = 1_000_000.0
KEY = "app/Model"


def core(store=None) -> StatsCore:
    c = StatsCore(MonitorConfig(windows={"length": 10.0, "rolling": 3, "grace": 0.0, "evaluation_interval": 1.0},
                                actor={"sqlite_path": None}, alerting={"watchdog": False}), store)
    c.register_model(KEY, {}, None, now=T0)
    return c


def batch(seq: int, n: int, abandoned=()):
    b = make_batch(None, n=n, seq=seq, replica="r1", ts=T0 + seq)
    b.abandoned = [list(e) for e in abandoned]
    return b


def counted(c: StatsCore) -> tuple:
    ms = c.models[KEY]
    return ms.totals["requests"], ms.dropped_total


def test_only_a_seq_never_stored_counts_as_dropped_and_it_is_refused_afterwards():
    c = core()
    assert c.ingest(batch(1, 5), now=T0 + 1) == "ok"  # stored; its answer was lost
    # seq 2 (4 requests) never arrived; seq 3 tells of both
    assert c.ingest(batch(3, 3, abandoned=[(1, 5), (2, 4)]), now=T0 + 3) == "ok"
    assert counted(c) == (8, 4)
    assert c.ingest(batch(2, 4), now=T0 + 4) == "duplicate"  # it came after all: counted once, as dropped
    assert c.ingest(batch(4, 1, abandoned=[(1, 5), (2, 4)]), now=T0 + 5) == "ok"  # told again: nothing new
    assert counted(c) == (9, 4) and sum(counted(c)) == 5 + 4 + 3 + 1
    st = c.status(now=T0 + 6)["models"][KEY]
    assert st["totals"]["dropped"] == 4 and st["replicas"]["r1"]["dropped_total"] == 4
    closed = c.evaluate(now=T0 + 20)["models"][KEY]
    assert closed["totals"]["dropped"] == 4


def test_a_late_batch_stored_before_the_report_is_not_dropped():
    c = core()
    c.ingest(batch(2, 4), now=T0 + 2)  # the "abandoned" batch landed late, before the report
    c.ingest(batch(3, 3, abandoned=[(2, 4)]), now=T0 + 3)
    assert counted(c) == (7, 0)


@pytest.mark.parametrize("bad", [
    [[1]], [[1, -2]], [["1", 2]], [[1, 2.5]], "12", [[1, True]], [[0, 1]] * (MAX_ABANDONED + 1),
])
def test_a_malformed_report_is_refused_and_the_batch_still_counts(bad):
    c = core()
    b = batch(3, 3)
    b.abandoned = bad
    assert c.ingest(b, now=T0 + 3) == "ok"
    ms = c.models[KEY]
    assert counted(c) == (3, 0) and ms.refused["values"] == 1 and not ms.replicas["r1"].seen(1)
    assert c.failures.get("ingest.abandoned") == 1


def test_the_count_and_the_refusal_survive_a_restart(tmp_path):
    path = str(tmp_path / "s.sqlite")
    c = core(Store(path))
    c.ingest(batch(1, 5), now=T0 + 1)
    c.ingest(batch(3, 3, abandoned=[(2, 4)]), now=T0 + 3)
    c.checkpoint()
    c.ingest(batch(4, 2, abandoned=[(2, 4), (5, 6)]), now=T0 + 4)  # only in the journal
    before = counted(c)
    assert before == (10, 10)
    del c  # the process dies without a final checkpoint

    r = core(Store(path))
    r.recover()
    assert counted(r) == before
    assert r.ingest(batch(2, 4), now=T0 + 6) == "duplicate" and r.ingest(batch(5, 6), now=T0 + 6) == "duplicate"
    assert counted(r) == before
