"""Offline profiles, drift and batch inference on Ray Data, on a two-node cluster.

What is checked, against the single-process path on the same rows:

* the Ray fit of a Parquet directory is ``Profile.fit`` of the whole table (edges to the
  bit, categories, fingerprint, every count; moments to rounding), and the blocks ran on
  both nodes — test_parquet_directory_fit_is_profile_fit
* the drift of a Parquet directory: the same summary counts and verdicts, the same figures
  where they come from counts — test_parquet_directory_drift_is_single_process_drift
* a CSV directory, typed by Arrow's CSV reader on both engines — test_csv_directory
* a ``file://`` URI reads as the path does — test_uri
* a batch-inference job (a callable class on an actor pool, and a function on tasks)
  wrapped by ``monitor_batches`` reaches the stats actor as ``batch/<job>``: its rows,
  its batches, its drift verdict — test_batch_inference_reaches_the_stats_actor
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from rw_offline import assert_same_profile, assert_same_report, assert_same_summary
from rw_test_support import wait_until

from raywatch.drift.detect import detect_drift
from raywatch.offline import engine
from raywatch.offline.batch import monitor_batches
from raywatch.offline.sources import resolve
from raywatch.stats.profile import Profile

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def _by_value() -> None:
    """Ray's workers cannot import this test module (pytest put its folder on this process's
    path only): the job's functions and classes travel by value."""
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_parquet_directory_fit_is_profile_fit(two_nodes, files):
    import ray

    ref = files["reference"]["parquet"]
    src = resolve(ref)
    shared = ray.data.DataContext.get_current()
    before = shared.op_resource_reservation_enabled
    parts = engine.map_blocks(src, lambda t: ray.get_runtime_context().get_node_id(), engine="ray", blocks=8)
    nodes = {next(parts)}
    assert shared.op_resource_reservation_enabled == before  # the dataset's own context has it off, not the process's
    nodes.update(parts)
    assert len(nodes) == 2  # the blocks ran on both nodes
    got = engine.fit_profile(ref, engine="ray", seed=0, blocks=8)
    want = Profile.fit(pq.read_table(ref), seed=0)
    assert_same_profile(got, want)
    assert got.meta["fitted_in_blocks"] >= 2


def test_parquet_directory_drift_is_single_process_drift(two_nodes, files):
    profile = Profile.fit(pq.read_table(files["reference"]["parquet"]), seed=0)
    for name in ("current", "drifted"):
        d = files[name]["parquet"]
        whole = profile.summarize(pq.read_table(d), seed=0)
        report, summary = engine.drift(profile, d, engine="ray", seed=0, blocks=6)
        assert_same_summary(summary, whole)
        assert_same_report(report, detect_drift(profile, whole))
        local_report, local = engine.drift(profile, d, engine="local", seed=0)
        assert_same_summary(local, whole)
        assert_same_report(local_report, report)
    assert report.drifted_columns == ["amount"]


def test_csv_directory(two_nodes, files):
    ref, cur = files["reference"]["csv"], files["drifted"]["csv"]
    got = engine.fit_profile(ref, engine="ray", seed=0, blocks=4)
    want = Profile.fit(resolve(ref).read_all(), seed=0)  # the single-process path: Arrow's CSV typing too
    assert_same_profile(got, want)
    assert got.kinds == {"amount": "numerical", "hour": "numerical", "merchant": "categorical",
                         "card_present": "boolean", "score": "numerical"}
    report, summary = engine.drift(got, cur, engine="ray", seed=0, blocks=4)
    local_report, local = engine.drift(got, cur, engine="local", seed=0)
    assert_same_summary(summary, local)
    assert_same_report(report, local_report)
    assert report.drifted_columns == ["amount"]
    # a column given as categorical is read as text, on both engines
    kinds = {"hour": "categorical"}
    by_ray = engine.fit_profile(ref, kinds, engine="ray", seed=0)
    assert by_ray.kinds["hour"] == "categorical" and by_ray.categories("hour")[0] in [str(h) for h in range(24)]
    assert_same_profile(by_ray, engine.fit_profile(ref, kinds, engine="local", seed=0))


def test_uri(two_nodes, files):
    d = files["current"]["parquet"]
    profile = Profile.fit(pq.read_table(files["reference"]["parquet"]), seed=0)
    by_uri = engine.summarize("file://" + d, profile, engine="ray", seed=0)
    assert_same_summary(by_uri, engine.summarize(d, profile, engine="local", seed=0))
    assert resolve("file://" + d).files == resolve(d).files


class Scorer:
    """A model loaded once per actor: the shape of most batch-inference jobs."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def __call__(self, batch):
        amount = batch["amount"].to_numpy(zero_copy_only=False)
        score = np.clip(np.nan_to_num(amount) / 200.0, 0.0, 1.0)
        return batch.set_column(batch.column_names.index("score"), "score", [score])


def score_rows(batch):
    out = dict(batch)
    out["score"] = np.clip(np.nan_to_num(batch["amount"]) / 200.0, 0.0, 1.0)
    return out


@pytest.mark.slow
def test_batch_inference_reaches_the_stats_actor(two_nodes, files, tmp_path):
    import ray

    import raywatch

    _by_value()
    reference = pq.read_table(files["reference"]["parquet"])
    scored = reference.set_column(reference.column_names.index("score"), "score",
                                  [np.clip(np.nan_to_num(reference.column("amount").to_numpy()) / 200.0, 0.0, 1.0)])
    profile = Profile.fit(scored, seed=0)
    config = {"actor": {"name": "rw-batch-test", "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": None},
              "windows": {"length": "30s", "evaluation_interval": "1s", "rolling": 4}}
    rows = 0
    for job, fn, kwargs, data in (
        ("scoring", Scorer, {"fn_constructor_args": (0.5,), "compute": ray.data.ActorPoolStrategy(size=2),
                             "batch_format": "pyarrow"},
         files["drifted"]["parquet"]),
        ("scoring-tasks", score_rows, {"batch_format": "numpy"}, files["current"]["parquet"]),
    ):
        monitored = monitor_batches(fn, job, profile=profile, config=config, model="fraud")
        ds = ray.data.read_parquet(data).map_batches(monitored, batch_size=5_000, **kwargs)
        rows = ds.materialize().count()
        assert rows == 60_000
    # every batch's summary was acknowledged before the batch returned (pool actors and tasks
    # alike): every row is in the stats actor, though Ray Data killed the pool at the end

    last = {}

    def seen(key, drifted):
        st = raywatch.status(model=key, config=config)["models"].get(key)
        last[key] = st and {"totals": st.get("totals"), "replicas": len(st.get("replicas") or ()),
                            "amount": (st.get("drift") or {}).get("columns", {}).get("amount")}
        if not st or st["totals"].get("requests") != 60_000:
            return None
        cols = st["drift"]["columns"]
        if not cols or cols.get("amount", {}).get("drifted") is not drifted:
            return None
        return st

    try:
        st = wait_until(lambda: seen("batch/scoring", True), timeout=90, what="the class job in the stats actor")
    except AssertionError as exc:  # what the actor had: the rows, the replicas, the verdict
        raise AssertionError(f"{exc}; last status: {last.get('batch/scoring')}") from None
    assert st["labels"]["app"] == "batch" and st["labels"]["deployment"] == "scoring"
    assert st["labels"]["model"] == "fraud" and st["profile"]
    # one monitor per pool actor that got batches (Ray Data may give one actor all of them)
    assert 1 <= len(st["replicas"]) <= 2 and st["totals"]["capture_errors"] == 0
    assert st["drift"]["columns"]["merchant"]["drifted"] is False
    st = wait_until(lambda: seen("batch/scoring-tasks", False), timeout=90, what="the function job in the stats actor")
    assert not any(c.get("drifted") for c in st["drift"]["columns"].values())


def test_cli_on_ray(two_nodes, files, tmp_path):
    """``raywatch profile build --ray`` and ``raywatch drift --ray`` on the cluster this process
    uses: the profile of the single-process path, the same verdicts."""
    import json

    from click.testing import CliRunner

    from raywatch.cli import main

    out = tmp_path / "ray.profile"
    ref = files["reference"]["parquet"]
    res = CliRunner().invoke(main, ["profile", "build", ref, "-o", str(out), "--ray", "--blocks", "4"])
    assert res.exit_code == 0, res.output
    assert "fitted on Ray Data in 4 blocks" in res.output and "60,000 rows, 5 columns" in res.output
    assert_same_profile(Profile.load(out), engine.fit_profile(ref, seed=0))
    args = ["drift", str(out), files["drifted"]["csv"], "--json", "--fail-on-drift"]
    on_ray = CliRunner().invoke(main, args + ["--ray", "--blocks", "3"])
    local = CliRunner().invoke(main, args)
    assert on_ray.exit_code == local.exit_code == 3, on_ray.output
    a, b = json.loads(on_ray.output), json.loads(local.output)
    assert (a["engine"], b["engine"]) == ("ray", "local")
    assert a["report"]["drifted_columns"] == b["report"]["drifted_columns"] == ["amount"]
    for name, col in b["report"]["columns"].items():
        assert (a["report"]["columns"][name]["drifted"], a["report"]["columns"][name]["statistic"]) == \
            (col["drifted"], col["statistic"]), name


def _readme_block() -> str:
    """The README's batch-job example (the Python block this test covers)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    m = re.search(r"<!-- test: python covered-by=tests/offline/test_offline_ray.py -->\n```python\n(.*?)```", readme, re.S)
    assert m, "README.md has no batch-job example"
    return m.group(1)


@pytest.mark.slow
def test_readme_batch_job(two_nodes, files, tmp_path, monkeypatch):
    """The README's example as written, its S3 paths replaced by the test's files: the job
    writes its scored rows, and the stats actor has the job with its drift verdict."""
    import yaml

    import raywatch

    text = _readme_block()
    scored_dir = tmp_path / "scored"
    for uri, path in (("s3://bucket/transactions/2026-12-06/", files["drifted"]["parquet"]),
                      ("s3://bucket/scored/2026-12-06/", str(scored_dir))):
        assert uri in text
        text = text.replace(uri, path)
    monkeypatch.chdir(tmp_path)
    reference = pq.read_table(files["reference"]["parquet"])
    amount = np.nan_to_num(reference.column("amount").to_numpy(zero_copy_only=False))
    Profile.fit(reference.append_column("fraud_score", [np.clip(amount / 200.0, 0.0, 1.0)]), seed=0) \
        .save("fraud-scored.profile")
    config = {"actor": {"name": "rw-readme-batch", "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": None},
              "windows": {"length": "4s", "evaluation_interval": "1s", "rolling": 30}}
    (tmp_path / "monitor.yaml").write_text(yaml.safe_dump(config))
    exec(compile(text, "README.md (batch job)", "exec"), {"__name__": "__readme__"})
    scored = pq.read_table(str(scored_dir))
    assert scored.num_rows == 60_000 and "fraud_score" in scored.column_names

    def seen():
        st = raywatch.status(model="batch/nightly-scoring", config=config)["models"].get("batch/nightly-scoring")
        cols = (st or {}).get("drift", {}).get("columns") or {}
        if not st or st["totals"].get("requests") != 60_000 or "amount" not in cols:
            return None
        return st

    st = wait_until(seen, timeout=90, what="the README's job in the stats actor")
    assert st["labels"]["model"] == "fraud" and st["drift"]["columns"]["amount"]["drifted"] is True
    assert st["drift"]["columns"]["fraud_score"]["drifted"] is True  # the scores of drifted amounts drift too
    # the report: the job is a model of its own, beside any deployment
    from raywatch.actor.api import history
    from raywatch.report import write_report

    def closed():
        hist = history(config=config)
        return hist if hist["models"].get("batch/nightly-scoring", {}).get("windows") else None

    hist = wait_until(closed, timeout=60, what="a closed window of the README's job")
    html = write_report(hist, tmp_path / "report.html").read_text()
    assert "batch/nightly-scoring" in html and "fraud_score" in html
