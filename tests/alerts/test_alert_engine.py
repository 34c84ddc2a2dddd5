import json
import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import alert_helpers  # noqa: F401  (puts tests/sinks, where the receivers live, on sys.path)
from alert_receivers import Answer, HTTPReceiver, check_am_webhook
from alert_helpers import RecordingSink, got, stepped
from raywatch.alerts import AlertEngine, Series, read_dead_letters, replay_dead_letters
from raywatch.config import AlertingConfig
from raywatch.sinks.base import Sink, TransientError
from alert_helpers import make_engine, receiver  # noqa: F401  (fixtures)

M = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v1"}
HOT = [Series("error_rate", M, 0.5)]
COLD = [Series("error_rate", M, 0.0)]
RULES = [{"name": "HighErrors", "expr": "error_rate > 0.1", "severity": "critical",
          "annotations": {"summary": "{{ $labels.model }} errors {{ $value }}"}}]


def webhook(name, url, **kw):
    return dict({"name": name, "type": "webhook", "url": url, "timeout": 1}, **kw)


def test_failing_sink_never_delays_the_others(receiver, make_engine):
    receiver.defaults["/bad"] = Answer(500, "down")
    e = make_engine({"rules": RULES, "route": {"receiver": ["bad", "good"], "group_wait": "0s"},
                     "sinks": [webhook("bad", receiver.url("/bad"),
                                       retry={"max_attempts": 4, "initial_backoff": "1s", "max_backoff": "1s"}),
                               webhook("good", receiver.url("/good"))]},
                    background=True, record=False)
    e.evaluate(HOT)
    (ok,) = receiver.wait_for(1, "/good")
    bad = receiver.wait_for(4, "/bad", timeout=15)
    # the good sink was served before the failing one had even made its second attempt
    assert ok.t < bad[1].t
    assert e.wait_idle(10)
    m = e.metrics
    assert m.sent.labels(sink="good")._value.get() == 1
    assert m.retried.labels(sink="bad")._value.get() == 3
    assert m.failed.labels(sink="bad")._value.get() == 1


class Blocking(Sink):
    type = "webhook"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.got = []

    def send(self, n):
        self.entered.set()
        self.release.wait(10)
        self.got.append(n)


def test_evaluate_never_waits_on_delivery():
    cfg = AlertingConfig.model_validate({"watchdog": False, "rules": RULES, "route": {"receiver": "x", "group_wait": "0s"},
                                         "sinks": [{"name": "x", "type": "log"}]})
    sink = Blocking(cfg.sinks[0])
    e = AlertEngine.from_config(cfg, registry=CollectorRegistry(), sinks={"x": sink})
    try:
        e.evaluate(HOT, now=0)
        assert sink.entered.wait(5)      # delivery started and is stuck inside send()
        e.evaluate(COLD, now=10)         # evaluation still runs (a deadlock here would hang the test)
        e.evaluate(HOT, now=20)
        assert sink.got == []
    finally:
        sink.release.set()
        e.close(5)
    assert [n.status for n in sink.got][:1] == ["firing"]


class AlwaysDown(Sink):
    type = "webhook"

    def send(self, n):
        raise TransientError("connection error: ConnectionRefusedError")


def test_close_dead_letters_what_is_still_queued(tmp_path):
    dl = tmp_path / "dead.jsonl"
    cfg = AlertingConfig.model_validate({"watchdog": False,
        "rules": [{"name": f"R{i}", "expr": f"error_rate > {i / 100}"} for i in range(3)],
        "route": {"receiver": "x", "group_wait": "0s", "group_by": ["alertname"]},
        "sinks": [{"name": "x", "type": "log", "retry": {"max_attempts": 50, "initial_backoff": "5s"}}]})
    e = AlertEngine.from_config(cfg, registry=CollectorRegistry(), dead_letter_path=str(dl),
                                sinks={"x": AlwaysDown(cfg.sinks[0])})
    e.evaluate(HOT, now=0)   # three groups -> three notifications queued
    t0 = time.monotonic()
    e.close(timeout=0.3)
    assert time.monotonic() - t0 < 9  # not the 50 x 5 s the retries would take
    recs = read_dead_letters(dl)
    assert len(recs) == 3 and all("shutdown" in r["reason"] for r in recs)
    assert sorted(r["notification"]["group_labels"]["alertname"] for r in recs) == ["R0", "R1", "R2"]
    assert e.metrics.dead_lettered.labels(sink="x")._value.get() == 3


def test_queue_overflow_goes_to_the_dead_letter_file(tmp_path):
    dl = tmp_path / "dead.jsonl"
    cfg = AlertingConfig.model_validate({"watchdog": False,
        "rules": [{"name": f"R{i}", "expr": f"error_rate > {i / 100}"} for i in range(5)],
        "route": {"receiver": "x", "group_wait": "0s", "group_by": ["alertname"]},
        "sinks": [{"name": "x", "type": "log", "queue_size": 2}]})
    sink = Blocking(cfg.sinks[0])
    e = AlertEngine.from_config(cfg, registry=CollectorRegistry(), dead_letter_path=str(dl), sinks={"x": sink},
                                background=False)
    try:
        e.evaluate(HOT, now=1)
        assert sink.entered.wait(5)
    finally:
        sink.release.set()
        e.close(5)
    recs = read_dead_letters(dl)
    # 5 notifications: 1 in send(), 2 queued, the rest overflowed (none lost)
    assert len(sink.got) + len(recs) == 5 and len(recs) >= 2
    assert all(r["reason"] == "queue full" for r in recs)


def test_dead_letters_hold_no_secrets_and_replay_resends_them(tmp_path, monkeypatch, caplog):
    hook = HTTPReceiver(validators={"/hooks/": check_am_webhook})
    try:
        token = "T0KEN-abc123-SECRET"
        monkeypatch.setenv("RW_HOOK_URL", hook.url(f"/hooks/{token}"))
        monkeypatch.setenv("RW_HOOK_AUTH", "Bearer " + token)
        hook.defaults[f"/hooks/{token}"] = Answer(401, "bad token")
        raw = {"rules": RULES, "route": {"receiver": "hook", "group_wait": "0s"}, "watchdog": False,
               "sinks": [{"name": "hook", "type": "webhook", "url": "${RW_HOOK_URL}",
                          "headers": {"Authorization": "${RW_HOOK_AUTH}"}}]}
        from raywatch.config import parse_config

        cfg = parse_config(raw, AlertingConfig)
        dl = tmp_path / "dead.jsonl"
        reg = CollectorRegistry()
        with caplog.at_level(logging.DEBUG, logger="raywatch"):
            e = AlertEngine.from_config(cfg, registry=reg, dead_letter_path=str(dl))
            e.evaluate(HOT)
            assert e.wait_idle(5)
            e.close(2)
        text = dl.read_text()
        (rec,) = read_dead_letters(dl)
        assert rec["sink"] == "hook" and rec["status"] == 401 and rec["notification"]["status"] == "firing"
        assert "bad token" in caplog.text           # the receiver's answer is logged
        for where in (text, caplog.text, generate_latest(reg).decode(), json.dumps(e.state()), repr(cfg)):
            assert token not in where
        # the receiver is fixed: replay sends the letter and empties the file
        hook.defaults[f"/hooks/{token}"] = Answer(200, "ok")
        result = replay_dead_letters(dl, cfg)
        assert result.to_dict() == {"sent": 1, "failed": 0, "skipped": 0, "remaining": 0, "superseded": 0,
                                    "best_effort": 0}
        assert dl.read_text() == ""
        last = hook.requests[-1]
        assert last.status == 200 and last.headers["Authorization"] == "Bearer " + token
        assert last.body["alerts"][0]["annotations"]["summary"] == "fraud errors 0.5"
    finally:
        hook.close()


def test_replay_keeps_what_fails_again_and_unknown_sinks(tmp_path, receiver):
    receiver.defaults["/h"] = Answer(400, "nope")
    two = RULES + [{"name": "Slow", "expr": "latency_p95_seconds > 0.5"}]   # two groups, both refused
    cfg = AlertingConfig.model_validate({"watchdog": False, "rules": two, "inhibit_rules": [],
                                         "route": {"receiver": "h", "group_wait": "0s"},
                                         "sinks": [webhook("h", receiver.url("/h"))]})
    dl = tmp_path / "dead.jsonl"
    e = AlertEngine.from_config(cfg, registry=CollectorRegistry(), dead_letter_path=str(dl), background=False)
    e.evaluate(HOT + [Series("latency_p95_seconds", M, 0.9)], now=0)
    assert e.wait_idle(5)
    e.close(2)
    recs = read_dead_letters(dl)
    assert len(recs) == 2
    with dl.open("a") as fh:
        fh.write(json.dumps(dict(recs[0], sink="gone")) + "\n")
    result = replay_dead_letters(dl, cfg)
    assert result.to_dict() == {"sent": 0, "failed": 2, "skipped": 1, "remaining": 3, "superseded": 0,
                                "best_effort": 0}
    assert [r["attempts"] for r in read_dead_letters(dl)][:2] == [2, 2]


def test_state_survives_a_restart_without_duplicate_notifications(make_engine):
    c = {"rules": RULES + [{"name": "Slow", "expr": "latency_p95_seconds > 0.5", "for": "1m"}],
         "route": {"receiver": "a", "group_wait": "0s", "group_interval": "1m"},
         "inhibit_rules": [], "sinks": [{"name": "a", "type": "log"}]}
    e1 = make_engine(c)
    series = HOT + [Series("latency_p95_seconds", M, 0.9)]
    e1.evaluate(series, now=0)
    assert len(got(e1, "a")) == 1
    e1.silence(['alertname="Nope"'], starts_at=0, ends_at=10_000)
    state = json.loads(json.dumps(e1.state()))

    e2 = make_engine(c)
    e2.restore(state)
    e2.evaluate(series, now=30)            # still firing: already told, nothing new
    assert got(e2, "a") == []
    assert len(e2.list_silences()) == 1
    e2.evaluate(series, now=60)            # Slow was pending since 0 and fires at 60, as before the restart
    e2.tick(60)
    # only Slow is news; HighErrors was announced before the restart and is not repeated
    assert [(a["labels"]["alertname"], a["status"]) for n in got(e2, "a") for a in n.alerts] == [("Slow", "firing")]
    e2.evaluate([], now=90)
    e2.tick(120)
    assert got(e2, "a")[-1].status == "resolved"


def test_alert_state_metric(make_engine):
    e = make_engine({"rules": RULES + [{"name": "Slow", "expr": "latency_p95_seconds > 0.5", "for": "1m"}],
                     "sinks": [{"name": "a", "type": "log"}]})
    e.evaluate(HOT + [Series("latency_p95_seconds", M, 0.9)], now=0)
    text = generate_latest(e.metrics.registry).decode()
    assert 'raywatch_alert_state{alertname="HighErrors",app="shop",deployment="Fraud",feature="",gpu="",method="",model="fraud",severity="critical",version="v1"} 2.0' in text
    assert 'raywatch_alert_state{alertname="Slow"' in text and "} 1.0" in text
    e.evaluate([], now=10)   # HighErrors resolves (0), Slow was pending: gone
    text = generate_latest(e.metrics.registry).decode()
    assert 'alertname="HighErrors"' in text and 'alertname="Slow"' not in text
    assert "raywatch_alert_evaluation_duration_seconds_count 2.0" in text


def test_resolve_all_tells_the_receivers_at_once_and_forgets_pending(make_engine):
    e = make_engine({"rules": RULES + [{"name": "Slow", "expr": "latency_p95_seconds > 0.5", "for": "1m"}],
                     "route": {"receiver": "a", "group_wait": "0s", "group_interval": "1h"},
                     "sinks": [{"name": "a", "type": "log"}]})
    e.evaluate(HOT + [Series("latency_p95_seconds", M, 0.9)], now=0)
    e.tick(0)
    assert [n.status for n in got(e, "a")] == ["firing"]
    resolved = e.resolve_all("rules replaced", now=5)  # well inside the group interval
    assert [(a.name, a.state) for a in resolved] == [("HighErrors", "resolved")]  # pending Slow: forgotten
    assert e.alerts() == []
    last = got(e, "a")[-1]
    assert last.status == "resolved" and len(got(e, "a")) == 2
    assert last.alerts[0]["annotations"]["resolved_reason"] == "rules replaced"
    assert "raywatch_alert_state{" not in generate_latest(e.metrics.registry).decode()
    assert e.resolve_all(now=6) == [] and len(got(e, "a")) == 2  # nothing left to say


def test_direct_alertmanager_push_format(receiver):
    from alert_receivers import ISO_RE

    cfg = AlertingConfig.model_validate({"watchdog": False, "rules": RULES, "sinks": [
        {"name": "am", "type": "alertmanager", "url": receiver.url(""), "resend_delay": "1m", "bearer_token": "tok"}]})
    e = stepped().from_config(cfg, registry=CollectorRegistry(), background=False)
    try:
        e.evaluate(HOT, now=1_000_000)
        e.evaluate(HOT, now=1_000_030)   # within resend_delay: no push
        e.evaluate(HOT, now=1_000_060)   # resend
        e.evaluate(COLD, now=1_000_090)  # resolved
        reqs = receiver.wait_for(3, "/api/v2/alerts")
    finally:
        e.close(5)
    assert len(receiver.requests) == 3
    first, again, done = (r.body[0] for r in reqs)
    assert reqs[0].headers["Authorization"] == "Bearer tok"
    assert first["labels"]["alertname"] == "HighErrors" and ISO_RE.match(first["startsAt"])
    assert first["endsAt"] > first["startsAt"] and again["endsAt"] > first["endsAt"]
    assert done["endsAt"].startswith("1970-01-12T13:48:10")  # the resolve time


def test_engine_rejects_evaluate_after_close(make_engine):
    e = make_engine({"rules": RULES})
    e.close()
    with pytest.raises(RuntimeError):
        e.evaluate(HOT)


def test_undelivered_notifications_survive_a_restart(tmp_path):
    cfg = AlertingConfig.model_validate({"watchdog": False, "rules": RULES, "route": {"receiver": "x", "group_wait": "0s"},
                                         "sinks": [{"name": "x", "type": "log"}]})
    stuck = Blocking(cfg.sinks[0])
    e1 = AlertEngine.from_config(cfg, registry=CollectorRegistry(), background=False, sinks={"x": stuck},
                                 dead_letter_path=str(tmp_path / "dl.jsonl"))
    e1.evaluate(HOT, now=0)
    assert stuck.entered.wait(5)
    state = json.loads(json.dumps(e1.state()))   # saved while the notification is still in flight
    assert [n["status"] for n in state["outbox"]["x"]] == ["firing"]
    stuck.release.set()
    e1.close(5)

    rec = RecordingSink(cfg.sinks[0])
    e2 = AlertEngine.from_config(cfg, registry=CollectorRegistry(), background=False, sinks={"x": rec})
    try:
        e2.restore(state)
        e2.evaluate(HOT, now=30)
        assert [n.status for n in got(e2, "x")] == ["firing"]   # resent once, not re-notified
        assert e2.state()["outbox"] == {}
    finally:
        e2.close(2)


def test_unwritable_dead_letter_path_falls_back_to_the_log(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = AlertingConfig.model_validate({"watchdog": False, "rules": RULES, "route": {"receiver": "x", "group_wait": "0s"},
                                         "sinks": [{"name": "x", "type": "log", "retry": {"max_attempts": 1}}]})
    with caplog.at_level(logging.ERROR, logger="raywatch"):
        e = AlertEngine.from_config(cfg, registry=CollectorRegistry(), background=False,
                                    dead_letter_path=str(blocker / "sub" / "dl.jsonl"), sinks={"x": AlwaysDown(cfg.sinks[0])})
        e.evaluate(HOT, now=0)
        assert e.wait_idle(5)
        e.close(1)
    assert "cannot create the dead-letter directory" in caplog.text
    assert "undeliverable notification for sink x" in caplog.text and '"alertname":"HighErrors"' in caplog.text


def test_engines_share_the_default_registry():
    """The stats actor may build several engines in one process with registry=None."""
    from prometheus_client import REGISTRY

    cfg = {"rules": RULES, "sinks": [{"name": "shared-a", "type": "log"}], "watchdog": False}
    e1 = AlertEngine.from_config(cfg, background=False)
    e2 = AlertEngine.from_config(dict(cfg, sinks=[{"name": "shared-b", "type": "log"}]), background=False)
    try:
        assert e1.metrics is e2.metrics
        assert REGISTRY.get_sample_value("raywatch_notifications_sent_total", {"sink": "shared-b"}) == 0.0
    finally:
        e1.close(1)
        e2.close(1)


def test_background_timer_follows_the_callers_timeline(receiver):
    """A caller on its own timeline (here: 1970) gets group timers in real time, and no
    repeat storm from mixing its timestamps with the clock's."""
    cfg = AlertingConfig.model_validate({"watchdog": False, "rules": RULES, "route": {"receiver": "h", "group_wait": "0s",
                                                                   "group_interval": "200ms", "repeat_interval": "1h"},
                                         "sinks": [webhook("h", receiver.url("/h"))]})
    e = AlertEngine.from_config(cfg, registry=CollectorRegistry())
    try:
        e.evaluate(HOT, now=1000.0)
        (req,) = receiver.wait_for(1, "/h", timeout=5)
        time.sleep(1.0)   # five group intervals: nothing new to say, so nothing is sent
        assert len(receiver.requests) == 1
        assert req.body["alerts"][0]["startsAt"] == "1970-01-01T00:16:40.000Z"
    finally:
        e.close(2)
