"""``raywatch shards add``: reads the config, calls :func:`raywatch.actor.add_shard` and prints
what moved (the operation itself: tests/actor/test_shards_ray.py)."""

from __future__ import annotations

from click.testing import CliRunner

import raywatch.actor as actor_pkg
from raywatch.cli import main
from raywatch.cli import shards as shards_cmd


def test_shards_add_prints_what_moved(monkeypatch, tmp_path):
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("actor:\n  name: rw\n  shards: 1\n")
    seen = {}

    def fake_add_shard(config, *, timeout):
        seen["name"], seen["timeout"] = config.actor.name, timeout
        return {"shards": 2, "created": "rw-1", "stayed": ["app/a"],
                "moved": [{"model": "app/b", "from": 0, "to": 1, "imported": True},
                          {"model": "app/c", "from": 0, "to": 1, "imported": False}]}

    monkeypatch.setattr(shards_cmd, "connect", lambda *a, **k: None)
    monkeypatch.setattr(actor_pkg, "add_shard", fake_add_shard, raising=False)
    r = CliRunner().invoke(main, ["shards", "add", "--config", str(cfg), "--timeout", "5"])
    assert r.exit_code == 0, r.output
    assert seen == {"name": "rw", "timeout": 5.0}
    assert r.output.splitlines() == ["2 shards: created rw-1", "moved app/b: shard 0 -> shard 1",
                                     "moved app/c: shard 0 -> shard 1 (done by an earlier run)",
                                     "2 moved, 1 stayed"]


def test_shards_add_says_when_no_actor_runs(monkeypatch):
    def none_running(config, *, timeout):
        raise RuntimeError("no stats actor 'raywatch-stats' runs in namespace 'raywatch': nothing to add a shard to")

    monkeypatch.setattr(shards_cmd, "connect", lambda *a, **k: None)
    monkeypatch.setattr(actor_pkg, "add_shard", none_running, raising=False)
    r = CliRunner().invoke(main, ["shards", "add"])
    assert r.exit_code == 1 and "nothing to add a shard to" in r.output
