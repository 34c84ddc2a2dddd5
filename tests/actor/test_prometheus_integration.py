"""A real Prometheus server scrapes the stats actor's /metrics (integration).

The stats actor exposes Prometheus metrics on a /metrics endpoint, checked with the
consumer users have: ``promtool check metrics`` accepts the exposition, and a
real ``prometheus`` on 127.0.0.1 scrapes it and answers PromQL queries over the actor's
series (the actor's HTTP server runs here on an asyncio loop in a thread; the Ray-hosted
server is the same class, scraped in test_actor_ray.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest
from rw_batches import make_batch, profile  # noqa: F401 (fixture)
from prometheus_client import CollectorRegistry, generate_latest
from rw_test_support import free_port

from raywatch.aggregate import StatsCore
from raywatch.actor.exposition import StatsCollector
from raywatch.actor.server import StatsServer
from raywatch.config import MonitorConfig

pytestmark = pytest.mark.integration

T0 = 1_000_000.0


@pytest.fixture
def served_core(profile):
    core = StatsCore(MonitorConfig(windows={"length": 10, "grace": 0}, actor={"sqlite_path": None}))
    core.register_model("app/Model", {"model": "fraud"}, profile.to_bytes())
    core.ingest(make_batch(profile, n=500, seq=1, ts=T0 + 1, errors=10, drift=True), now=T0 + 1)
    core.evaluate(now=T0 + 2)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatsCollector(core))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def fb(items):
        return {"accepted": len(items), "joined": 0}

    async def st(model):
        return core.status(model)

    srv = StatsServer(reg, fb, st, host="127.0.0.1", port=0)
    address = asyncio.run_coroutine_threadsafe(srv.start(), loop).result(timeout=10)
    yield core, reg, address
    asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_promtool_accepts_the_exposition(served_core, require_binary, tmp_path):
    promtool = require_binary("promtool")
    _, reg, _ = served_core
    proc = subprocess.run([promtool, "check", "metrics"], input=generate_latest(reg), capture_output=True, timeout=30)
    # promtool exits 0 when the text parses; lint findings (if any) are printed, not fatal here
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_real_prometheus_scrapes_the_actor(served_core, require_binary, tmp_path):
    prometheus = require_binary("prometheus")
    _, _, address = served_core
    target = address.split("//", 1)[1]
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: raywatch\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def query(q):
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())["data"]["result"]

    try:
        deadline = time.time() + 60
        result = []
        while time.time() < deadline:
            try:
                result = query('raywatch_requests_total{deployment="Model"}')
                if result:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert result, "prometheus never scraped raywatch_requests_total"
        assert result[0]["metric"]["model"] == "fraud" and float(result[0]["value"][1]) == 500
        assert float(query('raywatch_errors_total{deployment="Model"}')[0]["value"][1]) == 10
        drifted = query('raywatch_drift_detected{deployment="Model"} == 1')
        assert {r["metric"]["feature"] for r in drifted} == {"amount", "age", "country"}
        up = query('up{job="raywatch"}')
        assert float(up[0]["value"][1]) == 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
