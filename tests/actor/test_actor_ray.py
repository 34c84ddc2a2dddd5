"""The stats actor on a real Ray cluster, driven by direct actor calls.

What is checked:

* named async actor in namespace "raywatch", get-if-exists, detached —
  test_get_or_create_is_named_detached_and_get_if_exists
* merge of replica batches per model and window, status via the query API —
  test_ingest_from_replicas_and_status
* killed and re-created: resumes from SQLite, replicas re-find it by name, totals
  reconcile (requests sent = requests ingested + drops reported) —
  test_killed_actor_resumes_from_sqlite_and_totals_reconcile
* sharding: models spread over shards by the shared router; status merges all shards —
  test_sharding_routes_models_to_their_shard
* ground truth: raywatch.feedback and POST /feedback joined to predictions, per-window
  metrics — test_feedback_api_and_http_route
* Prometheus /metrics scraped over HTTP — test_metrics_endpoint_scraped_over_http
* DogStatsD from the actor to a local UDP socket — test_actor_sends_dogstatsd
* a journal write that fails fails the Ray call (the replica retries), the retry merged once
  — test_failed_journal_write_fails_the_ray_call
* ``raywatch.actor.api.reset`` forgets a model in the actor and its file —
  test_reset_through_the_query_api
* two nodes (ray.cluster_utils.Cluster), reporters on both report into one actor —
  test_two_node_cluster_reports_into_one_actor (slow; runs its own cluster in a subprocess)
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest
from rw_batches import make_batch, unique_name, profile  # noqa: F401 (fixture)
from rw_test_support import kill_stats_actors
from prometheus_client.parser import text_string_to_metric_families

import raywatch
from raywatch.actor import actor as actor_mod
from raywatch.actor.sharding import shard_for
from raywatch.config import MonitorConfig

pytestmark = pytest.mark.ray


@pytest.fixture
def actors(ray_cluster, tmp_path):
    """A factory of configs with a unique actor name; kills every shard afterwards."""
    made = []

    def make(**actor):
        a = {"name": unique_name(), "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": 0}
        a.update(actor)
        cfg = MonitorConfig(model="m", version="v1", actor=a,
                            windows={"length": 5, "rolling": 3, "grace": 0, "evaluation_interval": 3600})
        made.append(cfg)
        return cfg

    yield make
    for cfg in made:
        kill_stats_actors(ray_cluster, cfg, cfg.actor.shards)


def test_get_or_create_is_named_detached_and_get_if_exists(actors, ray_cluster, tmp_path):
    cfg = actors()
    # another driver (a job) creates the actor and exits: a detached actor outlives it
    script = tmp_path / "create.py"
    script.write_text(
        "import sys, ray\n"
        "from raywatch.actor.actor import get_or_create\n"
        "from raywatch.config import MonitorConfig\n"
        "ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)\n"
        "cfg = MonitorConfig.model_validate_json(sys.argv[2])\n"
        "print(ray.get(get_or_create(cfg).info.remote())['pid'])\n"
        "ray.shutdown()\n"
    )
    gcs = ray_cluster.get_runtime_context().gcs_address
    proc = subprocess.run([sys.executable, str(script), gcs, cfg.model_dump_json()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    created_pid = int(proc.stdout.strip().splitlines()[-1])
    h1 = actor_mod.get_or_create(cfg)  # get-if-exists: the job's actor, still alive
    assert ray_cluster.get(h1.info.remote())["pid"] == created_pid
    h2 = actor_mod.get_or_create(cfg, refresh=True)
    assert h1._actor_id == h2._actor_id
    found = ray_cluster.get_actor(cfg.actor.name, namespace="raywatch")
    assert found._actor_id == h1._actor_id
    info = ray_cluster.get(h1.info.remote())
    assert info["name"] == cfg.actor.name and info["namespace"] == "raywatch"


def test_ingest_from_replicas_and_status(actors, ray_cluster, profile):
    cfg = actors()
    h = actor_mod.get_or_create(cfg)
    ray_cluster.get(h.register_model.remote("app/Model", cfg, profile.to_bytes()))
    now = time.time()
    refs = []
    for r in range(3):
        for seq in range(1, 5):
            refs.append(h.ingest.remote(make_batch(profile, n=100, seq=seq, replica=f"rep{r}", ts=now - 0.1, errors=seq % 2)))
    assert sorted(ray_cluster.get(refs)) == ["ok"] * 12
    ray_cluster.get(h.evaluate.remote())
    st = raywatch.status("app/Model", config=cfg)
    m = st["models"]["app/Model"]
    assert m["totals"]["requests"] == 1200 and m["totals"]["errors"] == 6 and m["totals"]["rows"] == 1200
    assert m["window"]["requests"] == 1200
    assert 0.009 < m["window"]["latency_p50_seconds"] < 0.031
    assert set(m["replicas"]) == {"rep0", "rep1", "rep2"}
    assert m["labels"] == {"app": "app", "deployment": "Model", "model": "m", "version": "v1"}
    assert ray_cluster.get(h.get_profile.remote("app/Model")) == profile.to_bytes()
    assert ray_cluster.get(h.get_config.remote("app/Model"))["windows"]["length"] == 5


def test_killed_actor_resumes_from_sqlite_and_totals_reconcile(actors, ray_cluster, profile):
    cfg = actors()
    h = actor_mod.get_or_create(cfg)
    ray_cluster.get(h.register_model.remote("app/Model", cfg, profile.to_bytes()))
    now = time.time()
    sent = 0
    for seq in range(1, 6):
        ray_cluster.get(h.ingest.remote(make_batch(profile, n=100, seq=seq, ts=now, dropped_total=seq)))
        sent += 100
    ray_cluster.get(h.checkpoint.remote())
    for seq in range(6, 9):  # only in the journal when the actor dies
        ray_cluster.get(h.ingest.remote(make_batch(profile, n=100, seq=seq, ts=now, dropped_total=10)))
        sent += 100
    dropped = 10  # records the replica reported as dropped (cumulative)
    sent += dropped
    old_pid = ray_cluster.get(h.info.remote())["pid"]
    ray_cluster.kill(h, no_restart=True)
    # ray.kill is asynchronous: a call sent just after it may still be served before the
    # kill lands, so wait until the actor answers with an error (it is dead)
    deadline = time.monotonic() + 30
    while True:
        try:
            ray_cluster.get(h.info.remote(), timeout=10)
        except Exception:
            break
        assert time.monotonic() < deadline, "the killed actor still answers after 30 s"
        time.sleep(0.1)

    # a replica re-finds the actor by name: get_or_create creates it again, from SQLite
    h2 = actor_mod.get_or_create(cfg, refresh=True)
    info = ray_cluster.get(h2.info.remote())
    assert info["pid"] != old_pid
    assert info["recovered"]["replayed"] == 3 and info["recovered"]["models"] == 1
    # the replica retries the batch whose ack it never saw: recognised as a duplicate
    assert ray_cluster.get(h2.ingest.remote(make_batch(profile, n=100, seq=8, ts=now, dropped_total=10))) == "duplicate"
    st = ray_cluster.get(h2.evaluate.remote())["models"]["app/Model"]
    t = st["totals"]
    assert t["requests"] + t["dropped"] == sent
    assert t["rows"] == 800
    assert st["profile"] is True


def test_sharding_routes_models_to_their_shard(actors, ray_cluster, profile):
    cfg = actors(shards=3)
    keys = [f"app/Model{i}" for i in range(9)]
    now = time.time()
    for i, key in enumerate(keys):
        h = actor_mod.get_for_model(key, cfg)
        ray_cluster.get(h.ingest.remote(make_batch(profile, n=10 + i, seq=1, deployment=key.split("/")[1], ts=now)))
    owned = {}
    for shard in range(3):
        h = actor_mod.get_or_create(cfg, shard=shard)
        owned[shard] = set(ray_cluster.get(h.info.remote())["models"])
    for key in keys:
        assert key in owned[shard_for(key, 3)]
    assert sum(len(v) for v in owned.values()) == len(keys)
    assert len([s for s in owned.values() if s]) >= 2  # the hash spreads 9 models
    for shard in range(3):
        ray_cluster.get(actor_mod.get_or_create(cfg, shard=shard).evaluate.remote())
    st = raywatch.status(config=cfg)
    assert set(st["models"]) == set(keys)
    assert len(st["actors"]) == 3
    one = raywatch.status("app/Model4", config=cfg)
    assert list(one["models"]) == ["app/Model4"] and one["models"]["app/Model4"]["totals"]["requests"] == 14
    assert one["models"]["app/Model4"]["shard"] == shard_for("app/Model4", 3)


def test_feedback_api_and_http_route(actors, ray_cluster, profile):
    cfg = actors()
    h = actor_mod.get_or_create(cfg)
    ray_cluster.get(h.register_model.remote("app/Model", cfg, profile.to_bytes()))
    now = time.time()
    preds = [(f"req-{i}", i % 2, 0.9 if i % 2 else 0.2) for i in range(10)]
    # a label that arrives before its prediction
    assert raywatch.feedback("req-0", 0, model="app/Model", config=cfg) is False
    ray_cluster.get(h.ingest.remote(make_batch(profile, n=10, seq=1, ts=now, predictions=preds)))
    assert raywatch.feedback("req-1", 1, model="app/Model", config=cfg) is True
    assert raywatch.feedback("req-2", 1, config=cfg) is True  # no model: every shard
    base = ray_cluster.get(h.api_address.remote())  # /feedback and /status listen apart from /metrics
    body = json.dumps({"items": [{"request_id": f"req-{i}", "label": i % 2} for i in range(3, 10)]}).encode()
    req = urllib.request.Request(base + "/feedback", data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read()) == {"accepted": 7, "joined": 7, "refused": {}}
    joined = ray_cluster.get(h.feedback_many.remote([("nope", 1)]))
    assert joined == {"accepted": 1, "joined": 0, "refused": {}}
    st = ray_cluster.get(h.evaluate.remote())
    perf = st["models"]["app/Model"]["performance"]
    assert perf["rows"] == 10 and perf["accuracy"] == pytest.approx(0.9)  # req-2: predicted 0, label 1
    assert perf["precision"] == pytest.approx(1.0) and perf["recall"] == pytest.approx(5 / 6)
    assert st["actor"]["feedback"]["pending"]["labels"] == 1  # "nope"


def test_metrics_endpoint_scraped_over_http(actors, ray_cluster, profile):
    cfg = actors()
    h = actor_mod.get_or_create(cfg)
    url = ray_cluster.get(h.metrics_address.remote())
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    ray_cluster.get(h.ingest.remote(make_batch(profile, n=250, seq=1, ts=time.time(), errors=5)))
    ray_cluster.get(h.evaluate.remote())
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    got = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.labels.get("deployment") == "Model":
                got[s.name] = s.value
    assert got["raywatch_requests_total"] == 250
    assert got["raywatch_errors_total"] == 5
    assert got["raywatch_error_rate"] == pytest.approx(0.02)
    assert "raywatch_latency_p95_seconds" in got


def test_actor_sends_dogstatsd(actors, ray_cluster, profile):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10.0)
    try:
        cfg = actors(dogstatsd_host="127.0.0.1", dogstatsd_port=sock.getsockname()[1], dogstatsd_tags=["env:ci"])
        h = actor_mod.get_or_create(cfg)
        ray_cluster.get(h.ingest.remote(make_batch(profile, n=40, seq=1, ts=time.time())))
        ray_cluster.get(h.evaluate.remote())
        lines = []
        while not any(l.startswith("raywatch.requests_total:") for l in lines):
            lines += sock.recv(65535).decode().splitlines()
        req = [l for l in lines if l.startswith("raywatch.requests_total:")][0]
        assert req.startswith("raywatch.requests_total:40|c|") and "env:ci" in req and "deployment:Model" in req
    finally:
        sock.close()


def test_failed_journal_write_fails_the_ray_call(actors, ray_cluster, profile, tmp_path):
    cfg = actors(busy_timeout=0.3)
    h = actor_mod.get_or_create(cfg)
    ray_cluster.get(h.register_model.remote("app/Model", cfg, profile.to_bytes()))
    b = make_batch(profile, n=30, seq=1, ts=time.time())
    other = sqlite3.connect(str(tmp_path / "stats.sqlite"), isolation_level=None, timeout=5)
    other.execute("BEGIN IMMEDIATE")  # another process holds the file's write lock
    try:
        with pytest.raises(Exception, match="StoreWriteError|could not be written"):
            ray_cluster.get(h.ingest.remote(b), timeout=60)
    finally:
        other.execute("ROLLBACK")
        other.close()
    st = ray_cluster.get(h.status.remote("app/Model"))
    assert st["models"]["app/Model"]["totals"]["requests"] == 0 and st["actor"]["store"]["write_failures"] >= 1
    assert ray_cluster.get(h.ingest.remote(b)) == "ok"  # the retry, merged once
    assert ray_cluster.get(h.ingest.remote(b)) == "duplicate"
    assert ray_cluster.get(h.status.remote("app/Model"))["models"]["app/Model"]["totals"]["requests"] == 30


def test_reset_through_the_query_api(actors, ray_cluster, profile):
    from raywatch.actor.api import reset

    cfg = actors()
    h = actor_mod.get_or_create(cfg)
    for key in ("app/Model", "app/Keep"):
        ray_cluster.get(h.register_model.remote(key, cfg, profile.to_bytes()))
    ray_cluster.get(h.ingest.remote(make_batch(profile, n=10, seq=1, ts=time.time())))
    ray_cluster.get(h.checkpoint.remote())
    (answer,) = reset("app/Model", config=cfg)
    assert answer["found"] == ["app/Model"] and answer["deleted"]["models"] == 1 and answer["deleted"]["state"] == 1
    assert list(raywatch.status(config=cfg)["models"]) == ["app/Keep"]


_TWO_NODES = r"""
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import ray
from ray.cluster_utils import Cluster
from rw_batches import make_batch, reference
from raywatch.actor.actor import get_or_create
from raywatch.config import MonitorConfig
from raywatch.stats.profile import Profile

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node_a": 1}, "include_dashboard": False})
cluster.add_node(num_cpus=1, resources={"node_b": 1})
ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
try:
    cfg = MonitorConfig(actor={"name": "rw-two-nodes", "sqlite_path": sys.argv[2], "metrics_port": 0},
                        windows={"length": 60, "evaluation_interval": 3600})
    profile = Profile.fit(reference(), seed=0)

    @ray.remote(num_cpus=0)
    def reporter(cfg, batches):
        import dataclasses
        node = ray.get_runtime_context().get_node_id()
        h = get_or_create(cfg)  # re-finds the one actor by name from this node
        return node, [ray.get(h.ingest.remote(dataclasses.replace(b, node_id=node, end_ts=time.time()))) for b in batches]

    def batches(replica, n):
        return [make_batch(profile, n=n, seq=s, replica=replica, ts=time.time()) for s in range(1, 4)]

    # replicas register their model when they connect (one the actor learns from a batch alone asks for it)
    ray.get(get_or_create(cfg).register_model.remote("app/Model", cfg, profile.to_bytes()))
    refs = [reporter.options(resources={"node_a": 0.1}).remote(cfg, batches("replica-a", 10)),
            reporter.options(resources={"node_b": 0.1}).remote(cfg, batches("replica-b", 20))]
    results = ray.get(refs, timeout=120)
    h = get_or_create(cfg)
    st = ray.get(h.evaluate.remote())["models"]["app/Model"]
    info = ray.get(h.info.remote())
    print(json.dumps({"nodes": [r[0] for r in results], "acks": [r[1] for r in results],
                      "replicas": {k: v["node_id"] for k, v in st["replicas"].items()},
                      "requests": st["totals"]["requests"], "actor_node": info["node_id"],
                      "alive_nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]]}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.slow
def test_two_node_cluster_reports_into_one_actor(tmp_path):
    script = tmp_path / "two_nodes.py"
    script.write_text(_TWO_NODES)
    helpers = os.path.join(os.path.dirname(os.path.dirname(__file__)), "rw_batches.py")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_ADDRESS="")
    env.pop("RAY_ADDRESS")
    proc = subprocess.run([sys.executable, str(script), helpers, str(tmp_path / "two.sqlite")],
                          capture_output=True, text=True, timeout=240, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(set(out["nodes"])) == 2 and set(out["nodes"]) <= set(out["alive_nodes"])
    assert out["acks"] == [["ok"] * 3, ["ok"] * 3]
    assert out["requests"] == 3 * 10 + 3 * 20
    assert set(out["replicas"].values()) == set(out["nodes"])  # both nodes' replicas in the one actor
