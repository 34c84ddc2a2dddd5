"""The stats actor's class without a Ray cluster: how it wires its collaborators."""

from __future__ import annotations

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

from raywatch.actor.actor import StatsActor
from raywatch.config import MonitorConfig


def test_unwritable_sqlite_path_runs_in_memory(profile, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    a = StatsActor(MonitorConfig(actor={"sqlite_path": str(blocker / "stats.sqlite")}))
    assert a.core.store is None and a.core.failures == {"store.open": 1}
    assert a.core.ingest(make_batch(profile, n=5, seq=1)) == "ok"
