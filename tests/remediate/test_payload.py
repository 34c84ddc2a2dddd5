"""The payload log and the labelled dataset: records shaped as a replica's buffer drains
them, real Parquet files read back with pandas and ``ray.data.read_parquet``, retention by
age and bytes, owner-only files, late labels, and an S3 bucket on a local S3-compatible
server (moto's server mode on 127.0.0.1)."""

from __future__ import annotations

import os
import stat
import time

import pandas as pd
import pytest
from rw_test_support import free_port

from raywatch.config.remediate import PayloadLogConfig
from raywatch.payload.labelled import labelled_dataset, split_holdout, write_snapshot
from raywatch.payload.log import PayloadLog, parse_part
from raywatch.payload.rows import RECORD_FIELDS, payload_rows

T0 = 1_780_000_000.0  # a fixed UTC time (2026-05-28 20:26:40)


class Ctx:
    def __init__(self, rid):
        self.request_id = rid


def replica_records(n, *, t_offset=0.0):
    """Records as the replica's Capture produces them (sampled: args and result kept)."""
    from raywatch.serve.capture import Capture

    cap = Capture(buffer_size=10_000)
    out = []
    for i in range(n):
        cap.record("__call__", time.perf_counter(), None, None,
                   ({"amount": 10.0 + i, "country": "FR" if i % 2 else "DE", "card": f"4111-{i:04d}"},), {},
                   {"is_fraud": bool(i % 3 == 0), "probability": 0.1 + i / (10 * n)})
    for r in cap.drain():
        r = list(r)
        r[5] = Ctx(f"req-{len(out)}")  # Serve's request context (request id)
        out.append(tuple(r))
    return out


class Labels:
    app, deployment, model, version, replica_id = "shop", "Fraud", "fraud", "v1", "replica-1"


def rows_from_replica(n):
    from raywatch.config import CaptureConfig
    from raywatch.serve.extract import Extractor, prediction_and_score

    ex = Extractor.from_config(CaptureConfig(fields=["amount", "country", "card"], redact=["card"], redact_mode="hash"))
    epoch = T0 - time.perf_counter()
    return payload_rows(replica_records(n), Labels(), ex, prediction_and_score, epoch_offset=epoch)


def make_log(path, clock=lambda: T0, **kw):
    return PayloadLog(PayloadLogConfig(path=str(path), **kw), clock=clock)


def test_the_record_layout_is_the_captures():
    from raywatch.serve import capture

    assert [getattr(capture, f.upper()) for f in RECORD_FIELDS] == list(range(10))


def test_replica_records_become_parquet_partitioned_by_model_date_and_hour(tmp_path):
    log = make_log(tmp_path / "log")
    rows = rows_from_replica(50)
    assert len(rows) == 50 and log.add(rows) == 50
    assert log.flush() == 1
    (path,) = [e.path for e, _ in log.files("requests")]
    assert "/requests/model=fraud/date=2026-05-28/hour=20/part-" in path and parse_part(path)[3] == 50
    df = pd.read_parquet(tmp_path / "log" / "requests")  # hive partitions as columns
    assert len(df) == 50 and set(df["model"].astype(str)) == {"fraud"} and set(df["hour"].astype(str)) == {"20"}
    assert df["card"].str.startswith("h:").all()  # redacted as the capture configured
    assert {"amount", "country", "request_id", "version", "replica", "prediction", "score", "ts"} <= set(df.columns)
    assert df["prediction"].tolist()[:3] == [1.0, 0.0, 0.0] and df["replica"].iloc[0] == "replica-1"
    assert str(df["ts"].dt.tz) == "UTC"


def test_files_and_folders_are_owner_only(tmp_path):
    log = make_log(tmp_path / "log")
    log.add(rows_from_replica(3))
    log.add_labels("fraud", [("req-0", 1)])
    log.flush()
    for dirpath, dirnames, filenames in os.walk(tmp_path / "log"):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for f in filenames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode) == 0o600, f


def test_late_labels_join_into_the_labelled_dataset(tmp_path):
    now = [T0]
    log = make_log(tmp_path / "log", clock=lambda: now[0])
    log.add(rows_from_replica(20))
    log.add_labels("fraud", [(f"req-{i}", i % 2) for i in range(5)])  # on time
    log.flush()
    now[0] = T0 + 3 * 86400  # three days later, more labels (one corrected)
    log.add_labels("fraud", [("req-4", 0), ("req-10", 1), ("unknown", 1)])
    log.flush()
    t = labelled_dataset(log, "fraud", since=T0 - 3600)
    got = dict(zip(t.column("request_id").to_pylist(), t.column("label").to_pylist()))
    assert got == {"req-0": 0.0, "req-1": 1.0, "req-2": 0.0, "req-3": 1.0, "req-4": 0.0, "req-10": 1.0}
    assert t.column("label_ts").to_pylist()[-1].timestamp() == T0 + 3 * 86400
    train, held = split_holdout(t, 0.5)
    assert train.num_rows == held.num_rows == 3
    assert max(train.column("ts").to_pylist()) <= min(held.column("ts").to_pylist())
    path = write_snapshot(log, train, "fraud", now[0])
    snap = pd.read_parquet(path)
    assert sorted(snap["request_id"]) == sorted(train.column("request_id").to_pylist()) and "label" in snap


def test_retention_by_age_then_by_bytes_is_counted(tmp_path):
    now = [T0]
    log = make_log(tmp_path / "log", clock=lambda: now[0], max_age="2d", max_bytes=10**9)
    for day in range(4):
        now[0] = T0 + day * 86400
        rows = rows_from_replica(10)
        for r in rows:
            r["ts"] = now[0]
        log.add(rows)
        log.flush()
    assert len(log.files()) == 4
    out = log.enforce_retention(now=T0 + 3 * 86400 - 1)
    assert out["files_expired"] == 1 and out["rows_deleted"] == 10  # day 0 only is older than 2 days
    sizes = [e.size for e, _ in log.files()]
    log.cfg = log.cfg.model_copy(update={"max_bytes": sum(sizes) - 1})
    out = log.enforce_retention(now=T0 + 3 * 86400 - 1)
    assert out["files_evicted"] == 1 and len(log.files()) == 2  # the oldest left went
    assert log.counters["files_expired"] == 1 and log.counters["files_evicted"] == 1 and log.counters["rows_deleted"] == 20


def test_the_in_memory_bound_drops_and_counts(tmp_path):
    log = make_log(tmp_path / "log", max_pending_rows=30)
    assert log.add(rows_from_replica(50)) == 30
    assert log.counters["rows_dropped"] == 20 and log.pending_rows == 30
    log.flush()
    assert log.pending_rows == 0 and log.add(rows_from_replica(5)) == 5


def test_a_failed_write_keeps_its_rows_for_the_next_flush(tmp_path):
    log = make_log(tmp_path / "log")
    log.add(rows_from_replica(7))
    real = log._write
    calls = []

    def flaky(*a):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return real(*a)

    log._write = flaky
    assert log.flush() == 0 and log.counters["write_errors"] == 1 and log.pending_rows == 7
    assert log.flush() == 1 and log.pending_rows == 0 and log.counters["rows_written"] == 7


def test_sampling_is_by_request_id(tmp_path):
    log = make_log(tmp_path / "log", sample_rate=0.5)
    kept = log.add(rows_from_replica(400))
    assert 150 < kept < 250 and kept + log.counters["rows_sampled_out"] == 400
    again = make_log(tmp_path / "other", sample_rate=0.5)
    assert again.add(rows_from_replica(400)) == kept  # the same requests, the same choice


def test_pyarrow_is_an_extra():
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert not any(d.startswith("pyarrow") for d in project["dependencies"])
    assert any(d.startswith("pyarrow") for d in project["optional-dependencies"]["log"])


# --------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def s3():
    """A local S3-compatible server (moto's server mode) with an empty bucket."""
    boto3 = pytest.importorskip("boto3")
    from moto.s3 import responses as s3_responses
    from moto.server import ThreadedMotoServer

    # moto names the answer to CompleteMultipartUpload's root element ...Response; S3 (and the
    # AWS SDK inside pyarrow, which refuses anything else) says CompleteMultipartUploadResult
    serialized = s3_responses.S3Response.serialized

    def s3_serialized(self, result):
        status, headers, body = serialized(self, result)
        if self.data.get("Action") == "CompleteMultipartUpload" and isinstance(body, (str, bytes)):
            old, new = "CompleteMultipartUploadResponse", "CompleteMultipartUploadResult"
            body = body.replace(old, new) if isinstance(body, str) else body.replace(old.encode(), new.encode())
        return status, headers, body

    s3_responses.S3Response.serialized = s3_serialized

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    old = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="rw-payload")
    try:
        yield {"endpoint_override": endpoint, "scheme": "http", "region": "us-east-1"}
    finally:
        server.stop()
        s3_responses.S3Response.serialized = serialized
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def s3_log(options, clock=lambda: T0, **kw):
    return PayloadLog(PayloadLogConfig(path="s3://rw-payload/prod", filesystem=options, access_key="testing",
                                       secret_key="testing", **kw), clock=clock)


def test_the_log_on_s3_is_written_read_back_joined_and_retained(s3):
    import boto3
    import pyarrow.parquet as pq

    log = s3_log(s3, max_age="1d")
    log.add(rows_from_replica(30))
    log.add_labels("fraud", [(f"req-{i}", 1) for i in range(0, 30, 3)])
    assert log.flush() == 2
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3["endpoint_override"], region_name="us-east-1")
            .list_objects_v2(Bucket="rw-payload")["Contents"]]
    assert any(k.startswith("prod/requests/model=fraud/date=2026-05-28/hour=20/part-") for k in keys)
    assert any(k.startswith("prod/labels/model=fraud/") for k in keys)
    df = pq.read_table("rw-payload/prod/requests", filesystem=log.fs).to_pandas()
    assert len(df) == 30 and set(df["model"].astype(str)) == {"fraud"}
    t = labelled_dataset(log, "fraud", since=T0 - 60)
    assert t.num_rows == 10
    assert log.enforce_retention(now=T0 + 2 * 86400)["files_expired"] == 2 and log.files() == []


@pytest.mark.ray
def test_ray_data_reads_the_log_and_the_labelled_snapshot(ray_cluster, tmp_path, s3):
    import ray

    log = make_log(tmp_path / "log")
    log.add(rows_from_replica(40))
    log.add_labels("fraud", [(f"req-{i}", i % 2) for i in range(40)])
    log.flush()
    ds = ray.data.read_parquet(str(tmp_path / "log" / "requests"))
    assert ds.count() == 40 and "amount" in ds.schema().names
    snap = write_snapshot(log, labelled_dataset(log, "fraud", since=T0 - 60), "fraud", T0)
    rows = ray.data.read_parquet(snap).to_pandas()
    assert len(rows) == 40 and set(rows["label"]) == {0.0, 1.0}
    slog = s3_log(s3)
    slog.add(rows_from_replica(12))
    slog.flush()
    ds3 = ray.data.read_parquet(slog.table_path("requests"), filesystem=slog.fs)
    assert ds3.count() == 12


def test_a_shadows_answers_are_logged_as_the_candidate_and_kept_out_of_training_data(tmp_path):
    log = make_log(tmp_path / "log")
    served = rows_from_replica(6)
    shadow = [dict(r, version="v2", shadow=True, prediction=0) for r in rows_from_replica(6)[:3]]
    log.add(served + shadow)
    log.add_labels("fraud", [(f"req-{i}", 1) for i in range(6)])
    log.flush()
    t = labelled_dataset(log, "fraud", since=T0 - 60)
    assert t.num_rows == 6 and set(t.column("version").to_pylist()) == {"v1"}
    s = labelled_dataset(log, "fraud", since=T0 - 60, shadow=True)
    assert s.column("request_id").to_pylist() == ["req-0", "req-1", "req-2"]
    assert set(s.column("version").to_pylist()) == {"v2"} and s.column("label").to_pylist() == [1.0] * 3
