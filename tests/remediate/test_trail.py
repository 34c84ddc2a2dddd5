"""Where the controller keeps a model's audit trail (no Ray): in the stats actor's file when
the actor registered the model with it, the controller's own file otherwise — and its own
file again, counted and logged, when the stats actor cannot be reached: nothing is lost."""

from __future__ import annotations

import asyncio
import time

from raywatch.aggregate.audit import AuditEvent
from raywatch.aggregate.store import open_audit_log
from raywatch.remediate.shell import controller as ctl_mod
from raywatch.remediate.shell.controller import RemediationController
from raywatch.remediate.shell.trail import LocalTrail

SETTINGS = {"remediation": {"retrain": {"function": "m:f"}, "guardrails": {"min_interval": "1h"}},
            "payload_log": {"path": "/tmp/unused"}}
NOTE = {"alerts": [{"status": "firing", "labels": {"alertname": "FeatureDrift", "app": "shop", "deployment": "Scorer"}}]}


class FakeStatsTrail:
    """A stats actor's trail: its own file here (``fail`` makes every append raise)."""

    def __init__(self, path, fail=False):
        self.local = LocalTrail(open_audit_log(path))
        self.fail = fail
        self.name, self.namespace = "raywatch-stats", "raywatch"

    async def append(self, events):
        if self.fail:
            raise ConnectionError("stats actor unreachable")
        await self.local.append(events)

    async def events(self, model=None, since=None, *, decision=None):
        return await self.local.events(model, since, decision=decision)


def _ctl(tmp_path, monkeypatch, trail):
    monkeypatch.setattr(ctl_mod, "StatsTrail", lambda name, ns: trail)
    monkeypatch.setattr(ctl_mod, "_APPEND_TRIES", (0.0,))
    return RemediationController(str(tmp_path / "own.sqlite"))


def test_a_model_registered_by_a_stats_actor_keeps_its_trail_there(tmp_path, monkeypatch):
    trail = FakeStatsTrail(str(tmp_path / "stats.sqlite"))
    t = time.time()
    trail.local.log.append([AuditEvent.new("shop/Scorer", "old", "triggered", state="triggered", ts=t - 50),
                            AuditEvent.new("shop/Scorer", "old", "retrain_started", state="retraining", ts=t - 40)])
    ctl = _ctl(tmp_path, monkeypatch, trail)

    async def go():
        await ctl.register("shop/Scorer", SETTINGS, ("raywatch-stats", "raywatch"))
        return await ctl.notify(NOTE)

    out = asyncio.run(go())
    # the decision left open by a previous controller was closed, in the stats actor's file
    assert ctl.recovered == ["old"]
    kinds = [(e.decision, e.kind) for e in trail.local.log.events("shop/Scorer")]
    assert kinds[:3] == [("old", "triggered"), ("old", "retrain_started"), ("old", "failed")]
    # the retrain 40 s ago holds the new alert back (min_interval), recorded there too
    assert out["started"] == [] and len(out["skipped"]) == 1 and kinds[-1][1] == "skipped"
    assert ctl.audit.events() == []  # nothing in the controller's own file
    assert ctl.counters["audit_fallbacks"] == 0


def test_an_unreachable_stats_actor_costs_nothing_but_a_fallback(tmp_path, monkeypatch):
    trail = FakeStatsTrail(str(tmp_path / "stats.sqlite"), fail=True)
    ctl = _ctl(tmp_path, monkeypatch, trail)

    async def go():
        await ctl.register("shop/Scorer", SETTINGS, ("raywatch-stats", "raywatch"))
        await ctl._record("shop/Scorer", "d1", "triggered", "FeatureDrift firing")
        return await ctl.events("shop/Scorer")

    events = asyncio.run(go())
    assert [e["kind"] for e in events] == ["triggered"]  # read back from the controller's own file
    assert [e.kind for e in ctl.audit.events("shop/Scorer")] == ["triggered"]
    assert ctl.counters["audit_fallbacks"] == 1


def test_series_and_status_name_the_model(tmp_path, monkeypatch):
    ctl = _ctl(tmp_path, monkeypatch, FakeStatsTrail(str(tmp_path / "stats.sqlite")))

    async def go():
        await ctl.register("shop/Scorer", {**SETTINGS, "model": "scorer", "version": "v1"})
        await ctl._record("shop/Scorer", "d1", "triggered", "FeatureDrift firing")
        ctl.approvals["d1"] = asyncio.get_running_loop().create_future()
        return await ctl.series(), await ctl.status()

    series, status = asyncio.run(go())
    labels = {"app": "shop", "deployment": "Scorer", "model": "scorer", "version": "v1"}
    assert ("remediation_steps_total", {**labels, "step": "triggered"}, 1.0) in series
    assert ("remediation_pending_approvals", labels, 1.0) in series
    assert status["open"] == {"d1": "triggered"} and status["decision_models"] == {"d1": "shop/Scorer"}
