"""Exposition without Ray: Prometheus collector, HTTP server (/metrics, /feedback), DogStatsD.

What is checked: Prometheus metrics from a dedicated registry with a custom
collector reading the actor's state (test_collector_*), the /metrics and POST /feedback
routes over real HTTP on 127.0.0.1 (test_server_*), DogStatsD metrics to a real local UDP
socket (test_dogstatsd_*).
"""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from rw_batches import make_batch, profile  # noqa: F401 (fixture)
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from raywatch.aggregate import StatsCore
from raywatch.actor.exposition import DogStatsdPublisher, StatsCollector
from raywatch.actor.server import StatsServer
from raywatch.config import MonitorConfig

T0 = 1_000_000.0


@pytest.fixture
def core(profile):
    c = StatsCore(MonitorConfig(windows={"length": 10, "grace": 0}, actor={"sqlite_path": None}))
    c.register_model("app/Model", {"model": "fraud", "version": "v3"}, profile.to_bytes())
    c.ingest(make_batch(profile, n=300, seq=1, ts=T0 + 2, errors=6, dropped_total=4,
                        predictions=[("p1", 1, 0.8), ("p2", 0, 0.3)],
                        resources={"cpu_percent": 42.0, "rss_bytes": 123456, "gpus": [], "gpu_status": "no GPU"}), now=T0 + 2)
    c.evaluate(now=T0 + 3)
    return c


def samples(text: str):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


LABELS = (("app", "app"), ("deployment", "Model"), ("model", "fraud"), ("version", "v1"))


def test_collector_exposes_live_counters_and_evaluated_gauges(core, profile):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatsCollector(core))
    s = samples(generate_latest(reg).decode())
    assert s[("raywatch_requests_total", LABELS)] == 300
    assert s[("raywatch_errors_total", LABELS)] == 6
    assert s[("raywatch_dropped_records_total", LABELS)] == 4
    assert s[("raywatch_error_rate", LABELS)] == pytest.approx(0.02)
    assert 0.009 < s[("raywatch_latency_p99_seconds", LABELS)] < 0.031
    assert s[("raywatch_cpu_percent", LABELS)] == 42.0
    assert s[("raywatch_replica_cpu_percent", tuple(sorted(LABELS + (("replica", "r1"),))))] == 42.0
    assert s[("raywatch_feedback_pending", ())] == 2
    # counters are read live, between evaluations
    core.ingest(make_batch(profile, n=5, seq=2, ts=T0 + 4), now=T0 + 4)
    s = samples(generate_latest(reg).decode())
    assert s[("raywatch_requests_total", LABELS)] == 305
    assert s[("raywatch_actor_batches_total", ())] == 2


def test_server_metrics_feedback_status(core):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatsCollector(core))

    async def fb(items):
        joined = sum(int(core.feedback(r, l, m, now=T0 + 5)) for r, l, m in items)
        return {"accepted": len(items), "joined": joined}

    async def st(model):
        return core.status(model)

    async def main():
        srv = StatsServer(reg, fb, st, host="127.0.0.1", port=0, models=lambda: {"app/Model": {"model": "fraud"}})
        base = await srv.start()
        api = srv.api_address
        assert base.startswith("http://127.0.0.1:") and api.startswith("http://127.0.0.1:") and api != base
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "/metrics") as r:
                    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
                    text = await r.text()
                for path in ("/feedback", "/status"):  # /metrics listens apart from the rest
                    async with http.request("POST" if path == "/feedback" else "GET", base + path) as r:
                        assert r.status in (404, 405), path
                async with http.get(api + "/metrics") as r:
                    assert r.status == 404
                base = api
                async with http.post(base + "/feedback", json={"request_id": "p1", "label": 1}) as r:
                    one = (r.status, await r.json())
                async with http.post(base + "/feedback", json={"items": [{"request_id": "p2", "label": 1, "model": "app/Model"},
                                                                        {"request_id": "zz", "label": 0}]}) as r:
                    many = (r.status, await r.json())
                async with http.post(base + "/feedback", data=b"{not json") as r:
                    bad = (r.status, await r.json())
                async with http.post(base + "/feedback", json=[{"label": 1}]) as r:
                    missing = (r.status, await r.json())
                async with http.get(base + "/status", params={"model": "app/Model"}) as r:
                    status = json.loads(await r.text())
        finally:
            await srv.stop()
        return text, one, many, bad, missing, status

    text, one, many, bad, missing, status = asyncio.run(main())
    assert samples(text)[("raywatch_requests_total", LABELS)] == 300
    assert one == (200, {"accepted": 1, "joined": 1})
    assert many == (200, {"accepted": 2, "joined": 1})
    assert bad[0] == 400 and "JSON" in bad[1]["error"]
    assert missing[0] == 400 and "request_id" in missing[1]["error"]
    assert list(status["models"]) == ["app/Model"]
    assert core.status()["actor"]["feedback"]["joined"] == 2


def test_dogstatsd_to_a_local_udp_socket(core, profile):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    port = sock.getsockname()[1]
    pub = DogStatsdPublisher("127.0.0.1", port, tags=["env:test"])

    def receive(expect_names):
        lines = []
        names = set()
        while not expect_names <= names:
            data = sock.recv(65535).decode()
            for line in data.splitlines():
                lines.append(line)
                names.add(line.split(":", 1)[0])
        return lines

    try:
        assert pub.publish(core.models.values()) > 0
        lines = receive({"raywatch.requests_total", "raywatch.error_rate", "raywatch.latency_p99_seconds"})
        req = [l for l in lines if l.startswith("raywatch.requests_total:")]
        assert req and req[0].startswith("raywatch.requests_total:300|c|")
        assert "env:test" in req[0] and "app:app" in req[0] and "model:fraud" in req[0]
        rate = [l for l in lines if l.startswith("raywatch.error_rate:")][0]
        assert "|g|" in rate and float(rate.split(":")[1].split("|")[0]) == pytest.approx(0.02)
        # the next publish sends the counter's increase only
        core.ingest(make_batch(profile, n=7, seq=2, ts=T0 + 4), now=T0 + 4)
        core.evaluate(now=T0 + 5)
        pub.publish(core.models.values())
        lines = receive({"raywatch.requests_total"})
        assert [l for l in lines if l.startswith("raywatch.requests_total:")][0].startswith("raywatch.requests_total:7|c|")
    finally:
        pub.close()
        sock.close()


def test_every_family_is_a_catalogue_metric_with_its_help(core):
    from raywatch.series import METRICS

    by_family = {m.prometheus_family if m.is_counter else m.prometheus: m for m in METRICS.values()}
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatsCollector(core))
    fams = list(text_string_to_metric_families(generate_latest(reg).decode()))
    assert len(fams) > 20
    for fam in fams:
        m = by_family[fam.name]
        assert (fam.documentation, fam.type) == (m.help, m.type)


def test_collector_exposes_refusals_and_the_actors_own_health(core, profile):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatsCollector(core))
    b = make_batch(profile, n=5, seq=3, ts=T0 + 4)
    s = profile.summarize({"amount": [1.0]}, seed=0)
    s.rows = -1_000_000_000
    b.summary = s.to_bytes()  # a valid CRC over an implausible summary
    core.ingest(b, now=T0 + 4)
    core.feedback_items([("x", "y" * 10_000, None)], now=T0 + 4)
    got = samples(generate_latest(reg).decode())
    assert got[("raywatch_summaries_refused_total", LABELS)] == 1
    assert got[("raywatch_feedback_refused_total", (("reason", "too_large"),))] == 1
    actor = (("actor", "raywatch-stats"),)
    assert got[("raywatch_store_memory_only", actor)] == 0 and got[("raywatch_store_corrupt", actor)] == 0
    assert ("raywatch_store_journal_bytes", actor) in got and ("raywatch_store_repairs_total", actor) in got


def test_gone_replicas_are_not_exported(profile):
    c = StatsCore(MonitorConfig(windows={"length": 10, "grace": 0}, actor={"sqlite_path": None, "replica_ttl": 60}))
    c.register_model("app/Model", {"model": "fraud", "version": "v1"}, profile.to_bytes())
    res = {"cpu_percent": 5.0, "rss_bytes": 1, "gpus": []}
    c.ingest(make_batch(profile, n=5, seq=1, replica="gone", ts=T0 - 900, resources=res), now=T0 - 900)
    c.ingest(make_batch(profile, n=5, seq=1, replica="live", ts=T0, resources=res), now=T0)
    c.evaluate(now=T0 + 1)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatsCollector(c))
    got = samples(generate_latest(reg).decode())
    replicas = {dict(k[1]).get("replica") for k in got if k[0] == "raywatch_replica_cpu_percent"}
    assert replicas == {"live"}
