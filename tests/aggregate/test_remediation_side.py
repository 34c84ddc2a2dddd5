"""The stats actor's part in closing the loop, without Ray (issue 14): labels into the payload
log (late ones too) so the labelled dataset joins them, payload-log counters and series, the
audit trail in the actor's own SQLite file — versioned data, owner-only, never pruned — and
on the history the report draws."""

from __future__ import annotations

import os
import stat

import pytest

from raywatch import series
from raywatch.aggregate.audit import AuditEvent
from raywatch.aggregate.core import StatsCore
from raywatch.aggregate.store import Store
from raywatch.config import MonitorConfig, PayloadLogConfig
from raywatch.payload.labelled import labelled_dataset
from raywatch.payload.log import PayloadLog
from raywatch.stats.batch import ReplicaBatch

T0 = 1_700_000_000.0


def _cfg(path, **extra):
    return {"model": "scorer", "payload_log": {"path": str(path), "flush_interval": "1ms"}, **extra}


def _requests(path, n, ts=T0):
    """What the router (or a replica) logged: n requests of model ``scorer``."""
    log = PayloadLog(PayloadLogConfig(path=str(path)))
    log.add([{"ts": ts + i, "request_id": f"r{i}", "model": "scorer", "version": "v1", "prediction": i % 2,
              "features": {"x1": float(i)}} for i in range(n)])
    log.flush()
    return log


@pytest.fixture
def core(tmp_path):
    store = Store(str(tmp_path / "state" / "stats.sqlite"))
    c = StatsCore(MonitorConfig(actor={"sqlite_path": None}), store, clock=lambda: T0 + 100)
    yield c
    store.close()


def test_labels_reach_the_payload_log_and_join_late_ones_included(core, tmp_path):
    path = tmp_path / "payload"
    log = _requests(path, 10)
    core.register_model("shop/Scorer", _cfg(path))
    out = core.feedback_items([("r1", 1, "shop/Scorer"), ("r2", 0, "shop/Scorer")], now=T0 + 60)
    assert out["accepted"] == 2
    core.feedback_items([("r2", 1, "shop/Scorer"), ("r9", 1, None)], now=T0 + 2 * 86400)  # two days late; r2 relabelled
    core.feedback_items([("r3", "not-joined-anywhere", "other/Model")], now=T0 + 61)  # refused: unknown model
    assert core.remediation.flush(force=True) >= 2
    t = labelled_dataset(log, "scorer", since=T0 - 1)
    assert t.column("request_id").to_pylist() == ["r1", "r2", "r9"]
    assert t.column("label").to_pylist() == [1.0, 1.0, 1.0]
    c = core.remediation.counters("shop/Scorer", "scorer", str(path))
    assert c["rows_written"] == 4 and c["write_errors"] == 0


def test_payload_counters_add_up_per_model_as_series(core, tmp_path):
    path = tmp_path / "payload"
    core.register_model("shop/Scorer", _cfg(path))
    for rid, rows in (("rep-1", 5), ("rep-2", 7), ("rep-1", 6)):  # cumulative per replica: the latest counts
        b = ReplicaBatch("shop", "Scorer", rid, T0, T0 + 1, model="scorer", seq=rows,
                         payload_log={"rows_written": rows, "rows_dropped": 1, "bogus": 99})
        core.ingest(b, now=T0 + 1)
    core.remediation.note_routers({"shop/Scorer": {"router-a": {"rows_written": 100, "write_errors": 2}}})
    got = {s.name: s.value for s in core.remediation.series(core.models)}
    assert got[series.PAYLOAD_LOG_ROWS_TOTAL.name] == 6 + 7 + 100
    assert got[series.PAYLOAD_LOG_DROPPED_ROWS_TOTAL.name] == 2 and got[series.PAYLOAD_LOG_WRITE_ERRORS_TOTAL.name] == 2
    labels = next(s.labels for s in core.remediation.series(core.models))
    assert labels == {"app": "shop", "deployment": "Scorer", "model": "scorer", "version": ""}


def test_the_audit_trail_lives_in_the_store_owner_only_and_is_never_pruned(core, tmp_path):
    ev = [AuditEvent.new("shop/Scorer", "d1", "triggered", state="triggered", ts=T0 - 30 * 86400,
                         evidence={"alert": {"labels": {"alertname": "AccuracyDrop"}}}),
          AuditEvent.new("shop/Scorer", "d1", "promoted", state="promoted", ts=T0, evidence={"version": "v2"})]
    core.audit.append(ev)
    assert stat.S_IMODE(os.stat(core.store.path).st_mode) == 0o600
    assert core.store.prune(T0 + 1) == 0  # history retention: windows and alerts only
    core.store.forget_model("shop/Scorer")  # raywatch reset keeps the compliance record
    assert core.store.counts()["audit"] == 2
    core.register_model("shop/Scorer", {"model": "scorer"})
    hist = core.history("shop/Scorer")
    assert [e["kind"] for e in hist["audit"]] == ["triggered", "promoted"]
    assert hist["audit"][1]["format"] == "raywatch.audit" and hist["audit"][1]["version"] == 1
    assert "audit" not in core.history("other/Model")  # no decision: the history is as before


def test_the_report_draws_the_decisions(core):
    from raywatch.report.html import render_report

    core.register_model("shop/Scorer", {"model": "scorer"})
    core.audit.append([AuditEvent.new("shop/Scorer", "d1", "triggered", state="triggered", ts=T0, summary="AccuracyDrop firing"),
                       AuditEvent.new("shop/Scorer", "d1", "promoted", state="promoted", ts=T0 + 30,
                                      summary="v2 promoted on shop/Scorer", evidence={"version": "v2"})])
    page = render_report(core.history("shop/Scorer"))
    assert "Remediation timeline" in page and "v2 promoted on shop/Scorer" in page and "AccuracyDrop firing" in page


def test_only_models_that_remediate_are_registered_and_never_a_candidate(core, tmp_path):
    rem = {"remediation": {"retrain": {"function": "m:f"}}, "alerting": {"sinks": [{"name": "r", "type": "remediation"}]}}
    core.register_model("shop/Scorer", _cfg(tmp_path / "p", **rem), b"")
    core.register_model("shop-rw-candidate/Scorer", _cfg(tmp_path / "p", **rem))
    core.register_model("shop/Other", _cfg(tmp_path / "p"))
    got = core.remediation.settings(core.models)
    assert list(got) == ["shop/Scorer"] and got["shop/Scorer"].model == "scorer"


def test_a_payload_log_that_cannot_open_is_counted_once(core, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    core.register_model("shop/Scorer", _cfg(blocker / "payload"))
    for i in range(3):
        core.feedback_items([(f"r{i}", 1, "shop/Scorer")], now=T0)
    assert core.failures.get("payload_log.open") == 1
    assert core.status()["actor"]["remediation"]["broken_logs"] == [f"scorer@{blocker / 'payload'}"]
