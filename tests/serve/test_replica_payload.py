"""The payload log of a monitored replica (issue 14): sampled requests become Parquet on the
flusher thread, owner-only, counted in every batch; a model that remediates is logged by
its rollout router instead; a payload log that cannot start costs only itself."""

from __future__ import annotations

import os
import stat
import time

import pandas as pd
import pytest

from raywatch.config import MonitorConfig
from raywatch.serve.buffer import Labels
from raywatch.serve.replica import ReplicaMonitor

from test_replica import Recorder  # noqa: E402  (tests/serve is on the path, as for the other serve tests)


class Ctx:
    def __init__(self, rid):
        self.request_id = rid


def _mon(cfg):
    mon = ReplicaMonitor(cfg, Labels("shop", "Scorer", "rep-1", model="scorer", version="v1"), transport=Recorder())
    ids = iter(range(10**6))
    mon.capture._ctx = lambda: Ctx(f"req-{next(ids)}")
    return mon


def _requests(mon, n):
    for i in range(n):
        t0 = time.perf_counter()
        mon.capture.record("__call__", t0, None, None, ({"x1": 0.5 * i, "x2": -1.0},), {},
                           {"prediction": i % 2, "score": 0.25 + 0.5 * (i % 2)})


def _interval_passed(mon):
    """Wait until the payload log's ``flush_interval`` (1 ms here) has passed since its last flush."""
    log = mon.payload_log.log
    while time.monotonic() - log._last_flush < log.cfg.flush_interval:
        time.sleep(0.001)


def _files(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".parquet")]


def test_a_monitored_replica_logs_its_sampled_requests_as_parquet(tmp_path):
    root = tmp_path / "payload"
    cfg = MonitorConfig(resources={"enabled": False}, payload_log={"path": str(root), "flush_interval": "1ms"})
    mon = _mon(cfg)
    assert mon.payload_log is not None
    _requests(mon, 30)
    _interval_passed(mon)
    batch = mon.tick()
    files = _files(root)
    assert len(files) == 1 and "/requests/model=scorer/date=" in files[0]
    df = pd.read_parquet(files[0])
    assert sorted(df["request_id"]) == sorted(f"req-{i}" for i in range(30))
    assert list(df.sort_values("x1")["x1"][:3]) == [0.0, 0.5, 1.0]
    assert set(df["version"]) == {"v1"} and set(df["replica"]) == {"rep-1"} and set(df["prediction"]) == {0.0, 1.0}
    # owner-only from creation, every folder the log made
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    d = os.path.dirname(files[0])
    while d != str(tmp_path):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
        d = os.path.dirname(d)
    # its counters travel with the batches (cumulative, stamped when a batch is sent)
    _requests(mon, 1)
    _interval_passed(mon)
    mon.tick()
    shipped = mon.transport.batches[-1]
    assert batch is not None and shipped.payload_log["rows_written"] == 31 and len(_files(root)) == 2
    assert mon.status()["payload_log"]["rows_written"] == 31


def test_the_request_path_only_records_the_flusher_writes(tmp_path):
    root = tmp_path / "payload"
    cfg = MonitorConfig(resources={"enabled": False}, payload_log={"path": str(root), "flush_interval": "1ms"})
    mon = _mon(cfg)
    _requests(mon, 10)
    assert _files(root) == [] and len(mon.capture.buffer) == 10  # nothing written by the requests themselves
    mon.stop(flush=True)
    assert len(pd.read_parquet(_files(root)[0])) == 10  # stopping writes what waits


def test_a_model_that_remediates_is_logged_by_its_router_not_its_replicas(tmp_path):
    cfg = MonitorConfig(resources={"enabled": False}, payload_log={"path": str(tmp_path / "p")},
                        remediation={"retrain": {"function": "m:f"}},
                        alerting={"sinks": [{"name": "r", "type": "remediation"}]})
    mon = _mon(cfg)
    assert mon.payload_log is None
    _requests(mon, 5)
    mon.tick()
    assert _files(tmp_path) == []


def test_a_payload_log_that_cannot_start_costs_only_itself(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = MonitorConfig(resources={"enabled": False}, payload_log={"path": str(blocker / "payload")})
    mon = _mon(cfg)
    assert mon.payload_log is None and mon.reload_errors == 1  # counted in capture_errors_total
    _requests(mon, 3)
    assert mon.tick() is not None and mon.transport.batches[-1].capture_errors_total == 1


def test_reconfigure_switches_the_payload_log_on_in_place(tmp_path):
    mon = _mon(MonitorConfig(resources={"enabled": False}))
    assert mon.payload_log is None
    assert mon.reconfigure({"payload_log": {"path": str(tmp_path / "p"), "flush_interval": "1ms"}})
    _requests(mon, 4)
    _interval_passed(mon)
    mon.tick()
    assert len(pd.read_parquet(_files(tmp_path / "p")[0])) == 4


@pytest.mark.parametrize("sample_rate", [0.0])
def test_unsampled_requests_keep_no_payload_to_log(tmp_path, sample_rate):
    cfg = MonitorConfig(resources={"enabled": False}, capture={"sample_rate": sample_rate},
                        payload_log={"path": str(tmp_path / "p"), "flush_interval": "1ms"})
    mon = _mon(cfg)
    _requests(mon, 5)
    mon.tick()
    assert _files(tmp_path) == [] and mon.payload_log.counters["rows_accepted"] == 0
