"""``raywatch demo --remediate`` end to end, as a user runs it: a subprocess with its own Ray
cluster. Drift hurts accuracy; AccuracyDrop reaches the remediation controller through the
``remediation`` sink; the controller retrains on the logged, labelled traffic, validates,
shadows, runs the canary and promotes — no request fails, accuracy recovers, every step is in
the stats actor's SQLite file, on the report and in the compliance record; the promotion is
written back into the serve config it deployed. The README's sample output has the lines a
real run prints (the README.md sample is checked against these lines in test_remediation_cli)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["triggered", "data_window", "retrain_started", "candidate", "validation_passed", "shadow_started",
         "shadow_figures", "canary_started", "canary_figures", "promoted"]
# lines of the README's sample (its "Closing the loop" section) that every run prints
SAMPLE_NEEDLES = ("THE WORLD CHANGES", "ALERT FIRING   AccuracyDrop [critical]", "REMEDIATION   triggered",
                  "REMEDIATION   validation_passed", "REMEDIATION   shadow_started", "REMEDIATION   canary_started",
                  "REMEDIATION   promoted", "timeline", "accuracy ", "0 failed")


@pytest.fixture(scope="module")
def run():
    out = Path(tempfile.mkdtemp(prefix="rw-demo-rem-"))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "raywatch.cli", "demo", "--remediate", "--out", str(out / "demo"),
                           "--no-progress"], cwd=str(ROOT), capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"})
    yield {"code": proc.returncode, "stdout": proc.stdout + proc.stderr, "out": out / "demo",
           "seconds": time.monotonic() - t0}
    shutil.rmtree(out, ignore_errors=True)


def test_the_demo_closes_the_loop_without_failing_a_request(run):
    stdout, out = run["stdout"], run["out"]
    assert run["code"] == 0, stdout[-5000:]
    assert run["seconds"] < 300, run["seconds"]  # under five minutes, start to shutdown
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_state"] == "promoted" and summary["steps"] == STEPS, summary
    assert summary["requests_failed"] == 0 and summary["requests_sent"] > 2000
    acc = summary["accuracy"]
    assert acc["before"] > 0.9 and acc["drifted"] < 0.8 and acc["after_promotion"] > 0.9, acc
    gate = summary["holdout_accuracy"]
    assert gate["candidate"] > gate["champion"] + 0.05
    shadow = summary["shadow_realized_accuracy"]  # the shadow's answers to mirrored requests, as their labels came
    assert shadow["labelled"] >= 20 and shadow["candidate"] > 0.85 > shadow["champion"], shadow
    realized = summary["canary_realized_accuracy"]
    assert realized["candidate"] is not None and realized["candidate"] > 0.85  # the realized-performance guard's figures
    assert summary["serve_config_user_config"]["version"] == "v2"  # written back into the YAML it deployed
    assert 0 < summary["seconds_alert_to_promotion"] < 120
    for needle in SAMPLE_NEEDLES:
        assert needle in stdout, needle
    assert re.search(r"done in \d+ s", stdout) and "Token authentication is enabled" not in stdout


def test_the_decisions_are_in_the_report_and_the_compliance_record(run):
    out = run["out"]
    assert run["code"] == 0
    report = (out / "report.html").read_text()
    assert "Remediation timeline" in report and "<title>v2 promoted</title>" in report
    assert "<title>remediation triggered</title>" in report and "the world changes" in report
    record = json.loads((out / "audit.json").read_text())
    (decision,) = record["decisions"]
    assert decision["state"] == "promoted" and [e["kind"] for e in decision["events"]] == STEPS
    promoted = decision["events"][-1]["evidence"]
    assert promoted["serve_config_patch"]["user_config"]["version"] == "v2"
    assert any(a.get("alertname") == "AccuracyDrop" for a in record["alerts"])
    assert "promoted" in (out / "audit.html").read_text()


def test_the_trail_is_in_the_stats_actors_file_and_reads_back_offline(run, tmp_path):
    from click.testing import CliRunner

    from raywatch.cli import main

    assert run["code"] == 0
    res = CliRunner().invoke(main, ["audit", "--model", "shop/Scorer", "--sqlite", str(run["out"] / "raywatch-stats.sqlite"),
                                    "--json-only"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.output)
    assert record["summary"] == {"promoted": 1} and any(a["alertname"] == "AccuracyDrop" for a in record["alerts"])

