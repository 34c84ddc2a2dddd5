"""Old state does not muddle new results (issue 16 item 8, the stats actor's part).

* a new version starts fresh figures; an old replica's late batch is stale (acknowledged,
  not merged, counted) — test_new_version_starts_fresh_figures
* a new deployment of the same version (a new epoch) too — test_new_deployment_epoch_starts_fresh
* an old state file (written before generations) meeting a new deployment: the reported
  "requests 704 … replicas 6" — test_old_state_file_meets_a_new_deployment
* replicas that are gone leave status — test_gone_replicas_leave_status
* the generation survives a restart — test_generation_survives_a_restart
* ``reset_model`` forgets a model in the actor and its SQLite file; ``reset_sqlite`` in a file
  no actor runs on — test_reset_model_*, test_reset_sqlite
"""

from __future__ import annotations

import dataclasses

from raywatch.aggregate import StatsCore, Store
from raywatch.aggregate.offline import reset_sqlite
from raywatch.config import MonitorConfig

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

T0 = 1_000_000.0


def core(profile, path=None, register=True):
    c = StatsCore(MonitorConfig(windows={"length": 10.0, "grace": 0.0}, actor={"sqlite_path": None, "replica_ttl": 60}),
                  Store(str(path)) if path is not None else None, clock=lambda: T0 + 30)
    c.recover()
    if register:
        c.register_model("app/Model", {"model": "m", "version": "v1"}, profile.to_bytes(), now=T0)
    return c


def batch(profile, seq, replica="r1", version="v1", generation=None, n=10, ts=T0 + 1):
    return dataclasses.replace(make_batch(profile, n=n, seq=seq, replica=replica, ts=ts), version=version,
                               generation=generation)


def model(c):
    return c.status(now=T0 + 30)["models"]["app/Model"]


def test_new_version_starts_fresh_figures(profile):
    c = core(profile)
    for k in range(1, 4):
        assert c.ingest(batch(profile, k, replica=f"old-{k}"), now=T0 + 1) == "ok"
    assert model(c)["totals"]["requests"] == 30
    assert c.ingest(batch(profile, 1, replica="new", version="v2", n=7, ts=T0 + 2), now=T0 + 2) == "ok"
    m = model(c)
    assert m["totals"]["requests"] == 7 and set(m["replicas"]) == {"new"} and m["labels"]["version"] == "v2"
    assert m["generation"] == "v2|" and m["generations"] == 1
    # an old replica still draining: acknowledged, not merged, counted
    assert c.ingest(batch(profile, 9, replica="old-1", ts=T0 + 3), now=T0 + 3) == "stale"
    m = model(c)
    assert m["totals"]["requests"] == 7 and m["refused"]["stale_batches"] == 1


def test_new_deployment_epoch_starts_fresh(profile):
    c = core(profile)
    c.ingest(batch(profile, 1, generation="deploy-1", n=50), now=T0 + 1)
    c.ingest(batch(profile, 2, generation="deploy-1", n=50), now=T0 + 1)
    preds = [("q1", 1, 0.9)]
    c.ingest(dataclasses.replace(batch(profile, 3, generation="deploy-1"), predictions=preds), now=T0 + 1)
    assert model(c)["totals"]["requests"] == 110
    c.ingest(batch(profile, 1, replica="r9", generation="deploy-2", n=5), now=T0 + 2)
    m = model(c)
    assert m["totals"]["requests"] == 5 and m["generation"] == "v1|deploy-2"
    assert c.joiner.pending()["predictions"] == 0  # the old generation's predictions are forgotten


def test_old_state_file_meets_a_new_deployment(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    old = core(profile, path)
    for r in range(6):  # an app that is gone: six replicas, before raywatch knew generations
        for k in range(1, 5):
            old.ingest(batch(profile, k, replica=f"gone-{r}", version=None, n=29 + r), now=T0 + 1)
    old.checkpoint(now=T0 + 2)
    old.models["app/Model"].generation = None  # as a file written before generations existed
    old.checkpoint(now=T0 + 2)
    assert model(old)["totals"]["requests"] == 4 * sum(29 + r for r in range(6)) == 756
    old.store.close()
    new = core(profile, path)  # the new deployment's replica registers, then ships
    assert new.ingest(batch(profile, 1, replica="fresh", generation="deploy-7", n=3, ts=T0 + 20), now=T0 + 20) == "ok"
    m = model(new)
    assert m["totals"]["requests"] == 3 and list(m["replicas"]) == ["fresh"] and m["replicas_gone"] == 0


def test_gone_replicas_leave_status(profile):
    c = core(profile)
    for r in range(6):
        c.ingest(batch(profile, 1, replica=f"r{r}"), now=T0 - 500)
    c.ingest(batch(profile, 2, replica="r0"), now=T0 + 25)
    m = model(c)  # replica_ttl 60 s: only r0 was heard from lately
    assert list(m["replicas"]) == ["r0"] and m["replicas_gone"] == 5
    assert c.ingest(batch(profile, 1, replica="r3"), now=T0 + 26) == "duplicate"  # still remembered for dedup


def test_generation_survives_a_restart(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core(profile, path)
    c.ingest(batch(profile, 1, generation="d1"), now=T0 + 1)
    c.ingest(batch(profile, 1, replica="r2", generation="d2"), now=T0 + 2)
    c.checkpoint(now=T0 + 3)
    c.ingest(batch(profile, 2, replica="r2", generation="d2"), now=T0 + 4)  # in the journal only
    c.store.close()
    again = core(profile, path, register=False)
    m = model(again)
    assert m["generation"] == "v1|d2" and m["totals"]["requests"] == 20 and m["generations"] == 1
    assert again.ingest(batch(profile, 3, replica="r2", generation="d2"), now=T0 + 5) == "ok"
    assert again.ingest(batch(profile, 2, generation="d1"), now=T0 + 5) == "stale"


def test_reset_model_forgets_it_here_and_in_the_file(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core(profile, path)
    c.register_model("app/Other", {"model": "o"}, profile.to_bytes(), now=T0)
    for k in range(1, 4):
        c.ingest(batch(profile, k, ts=T0 + 10 * k), now=T0 + 10 * k)
        c.ingest(dataclasses.replace(batch(profile, k, ts=T0 + 10 * k), deployment="Other"), now=T0 + 10 * k)
        c.evaluate(now=T0 + 10 * k + 1)  # closes windows into the history
    c.checkpoint(now=T0 + 40)
    c.ingest(batch(profile, 9, ts=T0 + 41, n=3), now=T0 + 41)  # a journal tail
    c.feedback("waiting", 1, "app/Model", now=T0 + 41)
    assert c.store.windows("app/Model")
    answer = c.reset_model("app/Model")
    assert answer["found"] == ["app/Model"] and answer["pending_dropped"] == 1
    assert answer["deleted"]["models"] == 1 and answer["deleted"]["state"] == 1 and answer["deleted"]["journal"] == 1
    assert answer["deleted"]["windows"] >= 2
    assert "app/Model" not in c.status()["models"] and c.store.windows("app/Model") == []
    c.store.close()
    again = core(profile, path, register=False)
    assert list(again.status()["models"]) == ["app/Other"]
    assert again.status()["models"]["app/Other"]["totals"]["requests"] == 30


def test_reset_model_by_name_and_unknown(profile):
    c = core(profile)
    c.register_model("other/Model", {"model": "m"}, profile.to_bytes(), now=T0)
    assert c.reset_model("m")["keys"] == ["app/Model", "other/Model"] and c.models == {}
    assert c.reset_model("nope") == {"model": "nope", "keys": [], "found": [], "pending_dropped": 0, "deleted": {}}


def test_reset_sqlite(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core(profile, path)
    c.ingest(batch(profile, 1), now=T0 + 1)
    c.checkpoint(now=T0 + 2)
    c.store.close()
    out = reset_sqlite(str(path), "m")
    assert out["keys"] == ["app/Model"] and out["deleted"]["models"] == 1 and out["deleted"]["state"] == 1
    again = core(profile, path, register=False)
    assert again.status()["models"] == {}
