"""Adding a stats actor shard at run time, the parts without Ray: names and files that stay
put when the count grows; the hand-over steps between two shards in one process (forwarding,
what each shard remembers across a restart, a rerun after a crash); the shipper learning the
new count (the same on a real cluster: test_shards_ray.py)."""

from __future__ import annotations

import asyncio
import json
import time

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

from raywatch.actor.actor import StatsActor, sqlite_path_for
from raywatch.actor.sharding import actor_name, shard_for, with_shards
from raywatch.aggregate import StatsCore
from raywatch.config import MonitorConfig
from raywatch.serve.shipper import ShardResolver, Shipper
from raywatch.stats.batch import answer_of


def test_shard_0_keeps_its_name_and_file_whatever_the_count(tmp_path):
    base = str(tmp_path / "stats.sqlite")
    one, two = (MonitorConfig(actor={"name": "rw", "sqlite_path": base, "shards": n}) for n in (1, 2))
    assert actor_name("rw", 0, 1) == actor_name("rw", 0, 2) == one.actor.shard_name(0) == two.actor.shard_name(0) == "rw"
    assert actor_name("rw", 1, 2) == two.actor.shard_name(1) == "rw-1"
    assert sqlite_path_for(one, 0) == sqlite_path_for(two, 0) == base
    assert sqlite_path_for(two, 1) == str(tmp_path / "stats-1.sqlite")


def test_an_older_layouts_shard_0_file_is_used_when_the_base_file_is_not_there(tmp_path):
    cfg = MonitorConfig(actor={"sqlite_path": str(tmp_path / "stats.sqlite"), "shards": 2})
    legacy = tmp_path / "stats-0.sqlite"
    legacy.write_bytes(b"")
    assert sqlite_path_for(cfg, 0) == str(legacy)
    (tmp_path / "stats.sqlite").write_bytes(b"")
    assert sqlite_path_for(cfg, 0) == str(tmp_path / "stats.sqlite")


# ---------------------------------------------------------------- the steps, two shards in one process
T0 = time.time() - 8.0  # the actor stamps batches with its clock
KEYS = [f"app/model-{i}" for i in range(8)]
MOVER = next(k for k in KEYS if shard_for(k, 2) == 1)
STAYER = next(k for k in KEYS if shard_for(k, 2) == 0)


def config(tmp_path):
    return MonitorConfig(model="m", windows={"length": 10.0, "rolling": 3, "grace": 0.0, "evaluation_interval": 3600},
                         actor={"name": "rw", "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": None})


def shard(cfg, n):
    return StatsActor(with_shards(cfg, n + 1), shard=n)


def wire(*actors):
    """Each actor passes calls on to the others in this process, as Ray would."""
    peers = {a.name: a for a in actors}
    for a in actors:
        a._pass = lambda to, method, *args: getattr(peers[to], method)(*args)


def batch(profile, key, seq, ts):
    return make_batch(profile, n=20 + seq, seq=seq, replica="r0", deployment=key.split("/")[1], ts=ts, seed=seq)


def figures(core, key, now):
    core.evaluate(now=now)
    st = core.status(key)["models"][key]
    return json.loads(json.dumps({k: st[k] for k in ("window", "totals")}))


def close(*actors):
    for a in actors:
        a.core.store.close()


def test_a_model_handed_over_keeps_its_figures_and_both_shards_remember_across_a_restart(profile, tmp_path):
    cfg = config(tmp_path)
    truth = StatsCore(cfg.model_copy(update={"actor": cfg.actor.model_copy(update={"sqlite_path": None})}))

    async def main():
        s0 = shard(cfg, 0)
        for key in (MOVER, STAYER):
            for core in (s0.core, truth):
                core.register_model(key, {"model": "m"}, profile.to_bytes(), now=T0)
        for seq in range(1, 4):
            for key in (MOVER, STAYER):
                b = batch(profile, key, seq, T0 + seq)
                assert await s0.ingest(b) == "ok" and truth.ingest(b) == "ok"
        s1 = shard(cfg, 1)
        wire(s0, s1)
        assert await s1.set_shards(2) == 2
        data = await s0.export_model(MOVER, 1, 2)
        assert await s0.export_model(MOVER, 1, 2) == data  # asked again: the same record
        early = batch(profile, MOVER, 4, T0 + 4)  # reaches the old shard after the export: passed on
        reply, shards = answer_of(await s0.ingest(early))
        assert shards == 2 and reply in ("ok", "reregister")
        truth.ingest(early)
        assert await s1.import_model(data) is True
        assert await s1.import_model(data) is False  # a rerun: not imported twice
        assert await s0.forget_model(MOVER, 1, 2) is True
        assert await s0.forget_model(MOVER, 1, 2) is False
        assert await s0.export_model(MOVER, 1, 2) is None  # forgotten: skipped
        late = await s0.ingest_many([batch(profile, MOVER, 5, T0 + 5), batch(profile, STAYER, 4, T0 + 5)])
        assert late == {"ok": 2, "shards": 2}
        for b in (batch(profile, MOVER, 5, T0 + 5), batch(profile, STAYER, 4, T0 + 5)):
            truth.ingest(b)
        labels = await s0.feedback_many([("x1", 1, MOVER), ("x2", 1, STAYER)])
        assert labels["accepted"] == 2 and labels["shards"] == 2
        st = await s0.status(MOVER)  # a question about the moved model: answered by its new owner
        assert st["models"][MOVER]["shard"] == 1
        await s0.set_shards(2)
        return s0, s1

    s0, s1 = asyncio.run(main())
    assert set(s0.core.models) == {STAYER} and set(s1.core.models) == {MOVER}
    now = time.time()
    for key, holder in ((MOVER, s1), (STAYER, s0)):
        assert figures(holder.core, key, now) == figures(truth, key, now), key
    before = figures(s1.core, MOVER, now)
    assert s1.core.checkpoint() and s0.core.checkpoint()
    close(s0, s1)
    r0, r1 = shard(config(tmp_path), 0), shard(config(tmp_path), 1)  # restarted, on a config still saying 1
    assert (r0.core.shards, r0.core.moved, set(r0.core.models), r0.core.handovers) == (2, {MOVER: "rw-1"}, {STAYER}, {})
    assert set(r1.core.models) == {MOVER} and r1.core.taken == s1.core.taken and MOVER in r1.core.taken
    assert figures(r1.core, MOVER, now) == before
    close(r0, r1)


def test_a_crash_after_the_export_resumes_forwarding_and_the_rerun_finishes_the_move(profile, tmp_path):
    cfg = config(tmp_path)

    async def before_crash():
        s0 = shard(cfg, 0)
        for seq in range(1, 3):
            await s0.ingest(batch(profile, MOVER, seq, T0 + seq))
        return s0, await s0.export_model(MOVER, 1, 2)

    s0, data = asyncio.run(before_crash())
    close(s0)

    async def rerun():
        r0, s1 = shard(cfg, 0), shard(cfg, 1)
        wire(r0, s1)
        assert r0.core.moved == {MOVER: "rw-1"} and MOVER not in r0.core.models  # still passes it on
        assert r0.core.handovers[MOVER]["id"] == data["id"]
        again = await r0.export_model(MOVER, 1, 2)
        assert again["id"] == data["id"]
        _, shards = answer_of(await r0.ingest(batch(profile, MOVER, 3, T0 + 3)))
        assert shards == 2
        assert await s1.import_model(again) is True and await r0.forget_model(MOVER, 1, 2) is True
        return r0, s1

    r0, s1 = asyncio.run(rerun())
    assert s1.core.models[MOVER].totals["requests"] == 21 + 22 + 23
    close(r0, s1)


def test_a_label_passed_on_before_the_import_waits_for_the_model_and_joins_there(profile, tmp_path):
    """Between the export on the old shard and the import on the new one, a label for the
    model that no batch preceded reaches a shard that does not hold the model yet: it waits
    there (journaled, acknowledged) and joins its prediction, which the record brings."""
    cfg = config(tmp_path)

    async def main():
        s0, s1 = shard(cfg, 0), shard(cfg, 1)
        wire(s0, s1)
        s0.core.register_model(MOVER, {"model": "m"}, profile.to_bytes(), now=T0)
        assert await s0.ingest(make_batch(profile, n=20, seq=1, replica="r0", deployment=MOVER.split("/")[1], ts=T0,
                                          predictions=[("q-early", 1, 0.9)])) == "ok"
        assert await s1.set_shards(2) == 2
        data = await s0.export_model(MOVER, 1, 2)
        assert MOVER not in s1.core.models
        passed = await s0.feedback_many([("q-early", 1, MOVER)])
        assert passed == {"accepted": 1, "joined": 0, "refused": {}, "shards": 2}
        # asked directly, or naming a model placed elsewhere, a shard still refuses a model it does not hold
        assert (await s1.feedback_many([("q-other", 1, MOVER)]))["refused"] == {"unknown_model": 1}
        assert (await s1.feedback_many([("q-other", 1, STAYER)], [STAYER]))["refused"] == {"unknown_model": 1}
        assert await s1.import_model(data) is True
        assert await s0.forget_model(MOVER, 1, 2) is True
        return s0, s1

    s0, s1 = asyncio.run(main())
    ms = s1.core.models[MOVER]
    assert ms.totals["feedback_rows"] == 1
    figures(s1.core, MOVER, time.time())
    assert s1.core.status(MOVER)["models"][MOVER]["totals"]["feedback_rows"] == 1
    close(s0, s1)


def test_the_alerts_of_a_model_handed_over_leave_the_old_shard_durably_with_the_record(profile, tmp_path):
    """The export takes the model's alerts out of the old shard's engines and writes their
    state with the hand-over record: restarted before its next checkpoint, the old shard
    holds no alert of the model (none to resolve), and the new one goes on with it."""
    cfg = config(tmp_path)
    model = {"model": "m", "alerting": {"rules": [{"name": "Busy", "expr": "requests_total > 0"}],
                                        "sinks": [{"name": "log", "type": "log"}]}}

    async def main():
        s0, s1 = shard(cfg, 0), shard(cfg, 1)
        wire(s0, s1)
        s0.core.register_model(MOVER, model, profile.to_bytes(), now=T0)
        assert await s0.ingest(batch(profile, MOVER, 1, T0 + 1)) == "ok"
        s0.core.evaluate()
        assert [a["state"] for a in s0.core.alerts(MOVER)] == ["firing"]
        assert s0.core.checkpoint()  # the alert is in the stored engine state
        assert await s1.set_shards(2) == 2
        data = await s0.export_model(MOVER, 1, 2)
        assert list(data["alerts"].values())[0]["rules"]
        assert await s1.import_model(data) is True
        return s0, s1

    s0, s1 = asyncio.run(main())
    assert s0.core.alerts(MOVER) == [] and [a["state"] for a in s1.core.alerts(MOVER)] == ["firing"]
    close(s0, s1)
    r0 = shard(config(tmp_path), 0)  # the old shard restarted before any checkpoint after the export
    assert MOVER in r0.core.handovers
    stored = [d["alert"]["labels"] for st in r0.core.alerting.state().values() for alerts in st["rules"].values() for d in alerts]
    assert all(f'{labels.get("app")}/{labels.get("deployment")}' != MOVER for labels in stored)
    assert r0.core.alerting.state()  # the engine's state was stored and read back
    close(r0)


def test_the_shipper_learns_the_new_count_from_a_forwarded_answer_and_resolves_again(profile):
    resolver = ShardResolver(MonitorConfig(), "app/m")
    answers = [{"reply": "ok", "shards": 2}, "ok"]
    sent = []

    class Transport:
        def resolve(self):
            return f"shard-for-{resolver.shards or 1}"

        def learn(self, shards):
            return resolver.learn(shards)

        def send(self, handle, b):
            sent.append(handle)
            return len(sent)

        def done(self, refs):
            return list(refs)

        def check(self, ref):
            return answers[ref - 1]

    s = Shipper(Transport(), clock=lambda: 0.0)
    for seq in (1, 2):
        s.submit(make_batch(profile, n=5, seq=seq))
        s.pump()
        s.pump()
    assert sent == ["shard-for-1", "shard-for-2"] and s.relocations == 1 and s.acked_batches == 2
    assert resolver.learn(2) is False and resolver.learn(3) is True
