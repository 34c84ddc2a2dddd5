"""Adding a stats actor shard at run time, on a real Ray cluster (issue 15, item 4).

One shard gets batches of eight models from real shippers (one a model, as replicas ship);
``raywatch.actor.add_shard`` adds a second while the batches keep arriving. Checked:

* some models moved and some stayed; each is held by the one shard that owns it now;
* every model's totals and window equal those of an in-process ``StatsCore`` that got every
  batch (nothing lost, nothing counted twice);
* a batch sent to the old shard after the move is passed on and acknowledged with the new
  owner's answer and the new count;
* the shippers of the moved models learned the count and send to the new owner;
* ``raywatch.status`` of a moved model answers from the new owner, with the live count;
* each model's firing alert is held by its owner, the moved ones since they first fired
  (carried with the model: it neither resolved nor started again).
"""

from __future__ import annotations

import math
import threading
import time

import pytest
import yaml
from click.testing import CliRunner
from rw_batches import make_batch, profile, unique_name  # noqa: F401 (fixture)
from rw_test_support import kill_stats_actors

import raywatch
from raywatch.actor import actor as actor_mod
from raywatch.actor import add_shard, api
from raywatch.actor.sharding import shard_for
from raywatch.cli import main
from raywatch.aggregate import StatsCore
from raywatch.config import MonitorConfig
from raywatch.serve.shipper import RayTransport, Shipper, default_resolver
from raywatch.stats.batch import answer_of

pytestmark = pytest.mark.ray

KEYS = [f"app/Model{i}" for i in range(8)]
WINDOWS = {"length": 3600, "rolling": 3, "grace": 0, "evaluation_interval": 3600}


def near(a, b, path="") -> None:
    """``a`` equals ``b``, floats to 1e-9 (merges in another order round otherwise)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            near(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            near(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and not (math.isnan(a) and math.isnan(b)):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    elif not (isinstance(a, float) and isinstance(b, float)):
        assert a == b, path


class Replicas:
    """One real shipper a model, fed from a thread until told to stop; ``truth`` gets each batch."""

    def __init__(self, cfg, truth, profile):
        self.truth, self.profile = truth, profile
        self.shippers = {k: Shipper(RayTransport(default_resolver(cfg, k)), max_retries=50, retry_backoff=0.05)
                         for k in KEYS}
        self.seq = 0
        self.lock = threading.Lock()

    def round(self, paced=False):
        """One batch a model; ``paced``: none while a shipper still holds 8 unsent (a replica
        flushing faster than the actor answers would drop its oldest batches by design, which
        is not what this test is about; a loaded machine slows the actors)."""
        with self.lock:
            if paced and any(len(s.pending) >= 8 for s in self.shippers.values()):
                self.pump()
                return
            self.seq += 1
            for m, key in enumerate(KEYS):
                dep = key.split("/")[1]
                b = make_batch(self.profile, n=20 + m, seq=self.seq, replica=f"{dep}-r0", deployment=dep,
                               ts=time.time(), errors=self.seq % 3 == 0, seed=self.seq * 10 + m)
                self.truth.ingest(b)
                self.shippers[key].submit(b)
            self.pump()

    def pump(self):
        for s in self.shippers.values():
            s.pump()

    def drain(self):
        for s in self.shippers.values():
            assert s.drain(timeout=60.0), s.stats()


def test_a_shard_added_live_takes_its_models_without_losing_a_batch(ray_cluster, tmp_path, profile):
    cfg = MonitorConfig(model="m", version="v1", windows=WINDOWS,
                        alerting={"rules": [{"name": "Busy", "expr": "requests_total > 0"}],
                                  "sinks": [{"name": "log", "type": "log"}]},
                        actor={"name": unique_name(), "namespace": "rw-shards-test", "shards": 1,
                               "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": 0})
    truth = StatsCore(cfg.model_copy(update={"actor": cfg.actor.model_copy(update={"sqlite_path": None})}))
    try:
        old = actor_mod.get_or_create(cfg)
        for key in KEYS:
            ray_cluster.get(old.register_model.remote(key, cfg, profile.to_bytes()))
            truth.register_model(key, cfg, profile.to_bytes())
        replicas = Replicas(cfg, truth, profile)
        for _ in range(3):
            replicas.round()
        replicas.drain()
        st = ray_cluster.get(old.evaluate.remote(time.time()))
        fired = {key: [(a["labels"]["alertname"], a["state"], a["active_at"]) for a in st["models"][key]["alerts"]]
                 for key in KEYS}
        assert all(v and v[0][:2] == ("Busy", "firing") for v in fired.values()), fired

        stop = threading.Event()

        def keep_sending():
            while not stop.is_set():
                replicas.round(paced=True)
                stop.wait(0.05)

        sender = threading.Thread(target=keep_sending, daemon=True)
        sender.start()
        t_move = time.time()
        try:
            out = add_shard(cfg, timeout=60.0)
        finally:
            stop.set()
            sender.join(timeout=60.0)
        moved = {m["model"] for m in out["moved"]}
        assert out["shards"] == 2 and out["created"] == f"{cfg.actor.name}-1"
        assert moved and out["stayed"] and moved | set(out["stayed"]) == set(KEYS)  # (a)
        assert moved == {k for k in KEYS if shard_for(k, 2) == 1}

        mover = sorted(moved)[0]
        dep = mover.split("/")[1]
        late = make_batch(profile, n=7, seq=1, replica=f"{dep}-late", deployment=dep, ts=time.time(), seed=99)
        truth.ingest(late)
        assert answer_of(ray_cluster.get(old.ingest.remote(late))) == ("ok", 2)  # (c) passed on, acknowledged

        for _ in range(3):  # the batches after the move: the moved models' shippers learn the count
            replicas.round()
        replicas.drain()
        # a shipper that learned the count from its last answers (every batch of those rounds may
        # have left before the first answer came back) resolves again at its next batch: one more
        replicas.round()
        replicas.drain()
        new = ray_cluster.get_actor(f"{cfg.actor.name}-1", namespace=cfg.actor.namespace)
        for key, s in replicas.shippers.items():
            assert s.dropped_records == 0 and not s.abandoned, (key, s.stats())
            if key in moved:  # (d)
                assert s.relocations == 1 and s.handle._actor_id == new._actor_id, (key, s.stats())
                assert s.transport._resolver.shards == 2
            else:
                assert s.relocations == 0 and s.handle._actor_id == old._actor_id

        infos = ray_cluster.get([old.info.remote(), new.info.remote()])
        assert [i["shards"] for i in infos] == [2, 2]
        assert set(infos[0]["models"]) == set(out["stayed"]) and set(infos[1]["models"]) == moved
        assert infos[0]["moved"] == {k: f"{cfg.actor.name}-1" for k in moved} and not infos[0]["handing_over"]

        now = time.time()
        ray_cluster.get([old.evaluate.remote(now), new.evaluate.remote(now)])
        truth.evaluate(now=now)
        st = raywatch.status(config=cfg)
        assert set(st["models"]) == set(KEYS) and len(st["actors"]) == 2
        for key in KEYS:  # (b) nothing lost, nothing counted twice
            got, want = st["models"][key], truth.status(key, now=now)["models"][key]
            assert got["shard"] == shard_for(key, 2)
            near({k: got[k] for k in ("window", "totals")}, {k: want[k] for k in ("window", "totals")}, key)
            assert [(a["labels"]["alertname"], a["state"], a["active_at"]) for a in got["alerts"]] == fired[key], key
        one = raywatch.status(mover, config=cfg)  # (e) asked with the config (1 shard): the new owner answers
        assert list(one["models"]) == [mover] and one["models"][mover]["shard"] == 1
        assert one["actors"][0]["shards"] == 2
        hist = api.history(mover, config=cfg)
        assert mover in hist["models"]
        # (f) the transitions the mover made on the old shard stay in its file: the model's
        # history reads them there; a reset forgets them there too
        fired_there = [a for a in hist["alerts"] if (a["model_key"], a["alertname"], a["state"]) == (mover, "Busy", "firing")]
        assert fired_there and fired_there[0]["ts"] <= t_move, hist["alerts"]
        assert ray_cluster.get(old.stored_alerts.remote(mover))
        yaml_path = tmp_path / "monitor.yaml"  # `raywatch reset --model KEY` as users run it
        yaml_path.write_text(yaml.safe_dump({"actor": cfg.actor.model_dump(include={"name", "namespace", "shards",
                                                                                     "sqlite_path", "metrics_port"})}))
        res = CliRunner().invoke(main, ["reset", "--model", mover, "--yes", "--config", str(yaml_path)])
        assert res.exit_code == 0 and res.output.startswith(f"reset {mover}"), res.output
        assert ray_cluster.get(old.stored_alerts.remote(mover)) == []
        answers = api.reset(mover, config=cfg)  # the owner first, then the other shard
        assert len(answers) == 2 and [a["keys"] for a in answers] == [[mover], [mover]]
        assert all(ray_cluster.get(old.stored_alerts.remote(k)) for k in out["stayed"])  # the others' stay
    finally:
        kill_stats_actors(ray_cluster, cfg, 2)
