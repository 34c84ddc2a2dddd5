"""Adding a stats-actor shard at run time, the parts without Ray: names and files that stay
put when the count grows."""

from __future__ import annotations

from raywatch.actor.actor import sqlite_path_for
from raywatch.actor.sharding import actor_name
from raywatch.config import MonitorConfig


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
