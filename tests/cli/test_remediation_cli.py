"""The command line of closing the loop, without Ray: pending approvals in ``raywatch status``
(pending first, with the command that answers them), and ``raywatch audit --sqlite`` on a
stats actor's own file — decisions, the alerts that fired, who approved — as JSON and HTML."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import click
from click.testing import CliRunner

from raywatch.aggregate.audit import AuditEvent
from raywatch.aggregate.core import StatsCore
from raywatch.aggregate.store import Store
from raywatch.cli import main
from raywatch.cli.status import status_lines
from raywatch.config import MonitorConfig

T0 = 1_700_000_000.0


def test_status_shows_pending_approvals_first_with_the_command():
    controller = {"open": {"e2f3a4b5c6d7e8": "canary", "d1c2b3a4f5e6d7": "awaiting_approval"},
                  "pending_approval": ["d1c2b3a4f5e6d7"], "decision_models": {"d1c2b3a4f5e6d7": "shop/Scorer"}}
    st = {"models": {"shop/Scorer": {"labels": {"model": "scorer"}}},
          "actors": [{"remediation": {"controller": controller}}]}
    lines = [click.unstyle(x) for x in status_lines(st)]
    rem = [x for x in lines if x.startswith("remediation:")]
    assert rem == ["remediation: d1c2b3a4f5e6 (shop/Scorer) awaiting approval: raywatch approve d1c2b3a4f5e6 (or reject)",
                   "remediation: e2f3a4b5c6d7 canary"]
    # the README's sample of these lines ("Closing the loop", Guardrails) is what they print
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    sample = text.split("<!-- test: output sample covered-by=tests/cli/test_remediation_cli.py -->", 1)[1]
    assert sample.split("```text\n", 1)[1].split("```", 1)[0].splitlines() == rem
    # the controller's own answer, when the command got one, wins over what the actors last heard
    st["remediation"] = {"open": {}, "pending_approval": []}
    assert [x for x in map(click.unstyle, status_lines(st)) if x.startswith("remediation:")] == [
        "remediation: no decision open"]
    del st["remediation"], st["actors"][0]["remediation"]
    assert not [x for x in status_lines(st) if "remediation" in x]  # nothing remediates: no line


def test_audit_reads_a_stats_actors_file_without_ray(tmp_path):
    path = tmp_path / "stats.sqlite"
    core = StatsCore(MonitorConfig(actor={"sqlite_path": None}), Store(str(path)), clock=lambda: T0)
    core.store.insert_alert(T0 - 5, "shop/Scorer", {"alertname": "AccuracyDrop", "state": "firing", "severity": "critical",
                                                   "labels": {"alertname": "AccuracyDrop"}, "annotations": {}, "value": 0.6})
    core.audit.append([
        AuditEvent.new("shop/Scorer", "d1", "triggered", state="triggered", ts=T0,
                       evidence={"alert": {"labels": {"alertname": "AccuracyDrop", "severity": "critical"}}}),
        AuditEvent.new("shop/Scorer", "d1", "approval_required", state="awaiting_approval", ts=T0 + 1),
        AuditEvent.new("shop/Scorer", "d1", "approved", state="approved", ts=T0 + 9, by="alice",
                       evidence={"comment": "looked at the window"}),
    ])
    core.store.close()
    out = tmp_path / "rec"
    res = CliRunner().invoke(main, ["audit", "--model", "Scorer", "--since", "36500d", "--sqlite", str(path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("shop/Scorer: 1 decisions (1 approved), 1 alerts, 1 approvals")
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert rec["alerts"][0]["alertname"] == "AccuracyDrop" and rec["alerts"][0]["value"] == 0.6  # from the file's history
    assert rec["approvals"] == [{"decision": "d1", "by": "alice", "ts": T0 + 9, "answer": "approved",
                                 "comment": "looked at the window"}]
    assert "alice" in (tmp_path / "rec.html").read_text()
    for f in ("rec.json", "rec.html"):
        assert stat.S_IMODE(os.stat(tmp_path / f).st_mode) == 0o600
    missing = CliRunner().invoke(main, ["audit", "--model", "Scorer", "--sqlite", str(tmp_path / "none.sqlite")])
    assert missing.exit_code != 0 and "no audit file at" in missing.output


def test_the_readme_demo_sample_has_the_lines_a_run_prints():
    """(tests/cli/test_demo_remediate.py checks a real run prints them)"""
    from test_demo_remediate import SAMPLE_NEEDLES

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    sample = text.split("<!-- test: output sample covered-by=tests/cli/test_demo_remediate.py -->", 1)[1]
    sample = sample.split("```text\n", 1)[1].split("```", 1)[0]
    for needle in SAMPLE_NEEDLES:
        assert needle in sample, needle
