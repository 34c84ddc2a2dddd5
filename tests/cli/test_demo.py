"""``raywatch demo`` end to end, as a user runs it: a subprocess with its own Ray cluster.

One demo run (module fixture) serves three tests: its console output and files; the
offline report from its SQLite file; and a real Prometheus server (Debian's ``prometheus``,
127.0.0.1, temporary storage, 1 s scrapes) that scraped the stats actor while it ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from rw_test_support import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

DURATION = 60
INPUT_FEATURES = ["amount", "hour", "merchant_category", "distance_km", "card_present", "tx_count_24h", "account_age_days"]
PROM_QUERIES = {  # the model-wide series: no segment label
    "requests": "raywatch_requests_total",
    "p95": 'raywatch_latency_p95_seconds{segment=""}',
    "drift_detected": 'raywatch_drift_detected{segment=""}',
    "drift_p_value": 'raywatch_drift_p_value{segment=""}',
    "segment_drift": 'raywatch_drift_detected{segment_column="merchant_category", feature="amount"}',
    # since the drift began (it hits one segment, so the model-wide test's verdict at one
    # instant depends on how much of the rolling view is drifted yet): flagged at some scrape
    "drift_seen": 'max_over_time(raywatch_drift_detected{segment=""}[3m])',
    "segment_drift_seen": 'max_over_time(raywatch_drift_detected{segment_column="merchant_category", feature="amount"}[3m])',
}


def _prom_query(base: str, q: str):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


class _Prometheus:
    """A real Prometheus scraping ``target`` every second (started once the demo prints it)."""

    def __init__(self, binary: str, target: str, workdir: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = workdir / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: raywatch\n    static_configs:\n      - targets: ['{target}']\n"
        )
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.results = {}
        self.targets = None

    def snapshot(self) -> None:
        with urllib.request.urlopen(f"{self.base}/api/v1/targets", timeout=10) as r:
            self.targets = json.loads(r.read())["data"]["activeTargets"]
        for name, q in PROM_QUERIES.items():
            self.results[name] = _prom_query(self.base, q)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def demo_run():
    out = Path(tempfile.mkdtemp(prefix="rw-demo-test-"))
    prom_bin = shutil.which("prometheus")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "raywatch.cli", "demo", "--duration", str(DURATION), "--out", str(out / "demo")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=str(Path(__file__).resolve().parents[2]))
    lines = []
    prom = None
    prom_error = None
    snap_at = None
    try:
        deadline = time.monotonic() + 600
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"raywatch metrics at http://(127\.0\.0\.1:\d+)/metrics", line)
            if m and prom_bin and prom is None:
                try:
                    prom = _Prometheus(prom_bin, m.group(1), out)
                except Exception as exc:  # reported by the Prometheus test
                    prom_error = exc
            if prom is not None and snap_at is None and re.match(r"\s+drift detected\s", line):
                # the demo's summary: its traffic is over, the stats actor still serves /metrics;
                # the drift series are read over the whole run (max_over_time) and at this instant
                snap_at = time.monotonic()
                try:
                    prom.snapshot()
                except Exception as exc:
                    prom_error = exc
            if time.monotonic() > deadline:
                proc.kill()
                break
        proc.wait(60)
    finally:
        if prom is not None:
            prom.stop()
    yield {"code": proc.returncode, "stdout": "".join(lines), "out": out / "demo", "prom": prom, "prom_error": prom_error}
    shutil.rmtree(out, ignore_errors=True)


def test_demo_catches_injected_drift_and_latency_and_writes_alerts_and_report(demo_run):
    stdout = demo_run["stdout"]
    assert demo_run["code"] == 0, stdout[-4000:]
    out = demo_run["out"]
    # announced, then shown live
    assert "DATA DRIFT injected: amount ×3, distance_km ×5" in stdout
    assert ">>> t=" in stdout and "injecting DATA DRIFT" in stdout and "LATENCY REGRESSION" in stdout
    assert re.search(r"\[t=\s*\d+s\] status\s+requests [\d,]+", stdout) and "p95" in stdout
    assert "amount=DRIFT" in stdout
    assert "progress " in stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["drift_injected"] == ["amount", "distance_km"]
    assert summary["drift_detected"] == ["amount", "distance_km"]
    assert summary["drift_false_alarms"] == []
    assert summary["requests_failed"] == 0 and summary["requests_sent"] > 20 * DURATION

    # alerts: on the console and in the JSONL file, drift only where injected
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    firing = [a for a in alerts if a["status"] == "firing"]
    drift_features = {a["labels"].get("feature") for a in firing if a["labels"]["alertname"] == "FeatureDrift"}
    assert drift_features == {"amount", "distance_km"}
    assert not drift_features & (set(INPUT_FEATURES) - {"amount", "distance_km"})
    assert any(a["labels"]["alertname"] == "LatencyRegression" for a in firing)
    for a in firing:
        if a["labels"]["alertname"] == "Watchdog":  # raywatch's own heartbeat: no model labels
            continue
        assert a["labels"]["app"] == "fraud" and a["labels"]["deployment"] == "FraudModel"
    assert any(a["labels"]["alertname"] == "Watchdog" for a in firing)  # the dead man's switch arrived
    assert summary["heartbeats"] >= 1 and "HEARTBEAT" in stdout
    assert re.search(r"ALERT FIRING\s+FeatureDrift \[warning\] feature=amount", stdout)
    assert re.search(r"ALERT FIRING\s+LatencyRegression \[critical\]", stdout)

    # the report
    report = (out / "report.html").read_text()
    assert report.startswith("<!DOCTYPE html>") and "<script" not in report
    assert 'aria-label="amount"' in report and '<span class="badge drift">' in report
    assert "data drift injected" in report and "LatencyRegression" in report
    assert "shutting down" in stdout and re.search(r"done in \d+ s", stdout)
    # Ray 2.60's connection notice is not raywatch's output
    assert "Token authentication is enabled" not in stdout


def test_demo_segment_story_names_grocery_alone(demo_run):
    """The drift and a fraud wave hit merchant_category=grocery only: status, alerts, summary
    and report name that segment and no other."""
    stdout, out = demo_run["stdout"], demo_run["out"]
    assert "in merchant_category=grocery only, with a fraud wave" in stdout
    # DRIFT (…) when the share of drifted columns reaches drift_share, else "drifted: …"
    assert re.search(r"worst segments: merchant_category=grocery (DRIFT \(|drifted: )amount, distance_km", stdout)
    assert re.search(r"ALERT FIRING\s+SegmentDrift \[warning\] merchant_category=grocery feature=amount", stdout)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["segment_injected"] == "merchant_category=grocery"
    assert summary["segments_drifted"] == ["grocery"]
    assert summary["segment_accuracy_after"]["grocery"] < 0.85
    assert all(acc > 0.85 for seg, acc in summary["segment_accuracy_after"].items() if seg != "grocery")
    assert "SegmentAccuracyLow(grocery)" in summary["segment_alerts"] and "SegmentDrift(grocery)" in summary["segment_alerts"]
    assert all(a.endswith("(grocery)") for a in summary["segment_alerts"])
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    segment_alerts = [a for a in alerts if a["status"] == "firing" and a["labels"].get("segment_column") == "merchant_category"]
    assert {a["labels"]["segment"] for a in segment_alerts} == {"grocery"}  # the alert names that segment alone
    report = (out / "report.html").read_text()
    assert "Who is affected" in report and "<b>merchant_category=grocery</b>" in report
    first = report.index("<b>merchant_category=")
    assert report[first:].startswith("<b>merchant_category=grocery</b>")
    prom = demo_run["prom"]
    if prom is not None and prom.results:
        seen = {r["metric"]["segment"]: float(r["value"][1]) for r in prom.results["segment_drift_seen"]}
        assert seen["grocery"] == 1.0, seen
        seg = {r["metric"]["segment"]: float(r["value"][1]) for r in prom.results["segment_drift"]}
        assert all(v == 0.0 for s, v in seg.items() if s != "grocery"), seg


def test_report_from_the_demo_sqlite_file_offline(demo_run, tmp_path):
    from click.testing import CliRunner

    from raywatch.cli import main

    assert demo_run["code"] == 0
    db = demo_run["out"] / "raywatch-stats.sqlite"
    res = CliRunner().invoke(main, ["report", "--sqlite", str(db), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    m = re.search(r"\((\d+) model\(s\), (\d+) window\(s\), (\d+) alert event\(s\)\)", res.output)
    assert m and int(m.group(1)) == 1 and int(m.group(2)) >= DURATION // 10 - 1 and int(m.group(3)) >= 3
    page = (tmp_path / "r.html").read_text()
    assert "fraud/FraudModel" in page and "FeatureDrift" in page
    # the "current" side is the traffic at the end of the stored history, even after the cluster is gone
    from raywatch.aggregate import history_from_sqlite

    feats = history_from_sqlite(str(db))["models"]["fraud/FraudModel"]["features"]
    assert set(INPUT_FEATURES) <= set(feats)
    assert all(sum(f["current"]["counts"]) > 50 for f in feats.values())
    assert "no current traffic" not in page


@pytest.mark.integration
def test_prometheus_scraped_the_stats_actor_during_the_demo(demo_run, require_binary):
    require_binary("prometheus")
    assert demo_run["prom_error"] is None, demo_run["prom_error"]
    prom = demo_run["prom"]
    assert prom is not None and prom.results, demo_run["stdout"][-3000:]
    assert [t["health"] for t in prom.targets] == ["up"]
    expected = {"app": "fraud", "deployment": "FraudModel", "model": "fraud", "version": "demo", "job": "raywatch"}
    (req,) = prom.results["requests"]
    assert {k: req["metric"].get(k) for k in expected} == expected
    assert float(req["value"][1]) > 100
    (p95,) = prom.results["p95"]
    assert 0 < float(p95["value"][1]) < 5
    seen = {r["metric"]["feature"]: float(r["value"][1]) for r in prom.results["drift_seen"]}
    assert seen["amount"] == 1.0 and seen["distance_km"] == 1.0, seen
    drift = {r["metric"]["feature"]: float(r["value"][1]) for r in prom.results["drift_detected"]}
    assert all(drift[f] == 0.0 for f in INPUT_FEATURES if f not in ("amount", "distance_km")), drift
    pvals = {r["metric"]["feature"] for r in prom.results["drift_p_value"]}
    assert set(INPUT_FEATURES) <= pvals
