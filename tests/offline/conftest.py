"""A two-node Ray cluster (``ray.cluster_utils.Cluster``: a head and one worker node, two
logical CPUs each) for the offline tests, and data files to read.

The session's one-node cluster (``tests/conftest.py``), when a test before these started
it, is shut down first and started again afterwards with the same settings, so the tests
after these find Ray as they expect it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from rw_offline import frame


@pytest.fixture(scope="module")
def two_nodes():
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    had_session = ray.is_initialized()
    if had_session:
        try:
            from ray import serve

            serve.shutdown()
        except Exception:
            pass
        ray.shutdown()
    # two logical CPUs a node: a batch job's pool of two actors leaves Ray Data CPUs to read and write
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="raywatch-tests", log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if had_session:  # as tests/conftest.py's ray_cluster started it
            ray.init(num_cpus=2, include_dashboard=False, namespace="raywatch-tests",
                     _temp_dir=tempfile.mkdtemp(prefix="rw-ray-"), log_to_driver=False, configure_logging=False)


@pytest.fixture(scope="module")
def files():
    """``{"reference"|"current"|"drifted": {"parquet"|"csv": directory}}``: four files each."""
    root = tempfile.mkdtemp(prefix="rw-offline-")
    out = {}
    for name, seed, shift in (("reference", 0, 0.0), ("current", 1, 0.0), ("drifted", 2, 1.0)):
        out[name] = {}
        for fmt in ("parquet", "csv"):
            d = os.path.join(root, name, fmt)
            os.makedirs(d)
            for i in range(4):
                t = frame(15_000, seed * 10 + i, shift)
                path = os.path.join(d, f"part-{i}.{fmt}")
                pq.write_table(t, path) if fmt == "parquet" else pacsv.write_csv(t, path)
            out[name][fmt] = d
    yield out
    shutil.rmtree(root, ignore_errors=True)
