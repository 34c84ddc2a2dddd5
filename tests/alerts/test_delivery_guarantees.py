"""Delivery as Alertmanager does it: sent means accepted, failures are retried at each group
interval, dead letters and their replay are serialized and know what was superseded, and
the Watchdog keeps firing. Time is driven explicitly (``stepped`` engines wait for the
previous step's deliveries, as real seconds between evaluations would); receivers are the
local stand-ins of tests/sinks."""

import json
import os
import stat
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import alert_helpers  # noqa: F401  (puts tests/sinks on sys.path)
from alert_helpers import got, make_engine, stepped  # noqa: F401  (make_engine: fixture)
from alert_receivers import Answer, HTTPReceiver, check_slack
from raywatch.alerts import AlertEngine, Series, read_dead_letters, replay_dead_letters
from raywatch.alerts.deadletter import DeadLetterFile
from raywatch.config import AlertingConfig
from raywatch.sinks.base import Sink, TransientError
from raywatch.sinks.notification import Notification
from sink_fixtures import hook  # noqa: F401  (fixture)

M = {"app": "shop", "deployment": "Fraud", "model": "fraud", "version": "v1"}
HOT = [Series("error_rate", M, 0.5)]
COLD = [Series("error_rate", M, 0.0)]
RULES = [{"name": "HighErrors", "expr": "error_rate > 0.1", "severity": "critical"}]


def config(url, *, retry=None, group_interval="1m", repeat_interval="1h", watchdog=False, **extra):
    sink = {"name": "h", "type": "webhook", "url": url, "timeout": 2, "retry": retry or {"max_attempts": 1}}
    return AlertingConfig.model_validate(dict({
        "rules": RULES, "watchdog": watchdog,
        "route": {"receiver": "h", "group_wait": "0s", "group_interval": group_interval, "repeat_interval": repeat_interval},
        "sinks": [sink]}, **extra))


def engine(cfg, **kw):
    return stepped().from_config(cfg, registry=CollectorRegistry(), background=False, **kw)


# --------------------------------------------------------------------------- sent means accepted


def test_a_failed_send_is_retried_at_each_group_interval_until_accepted(hook):
    """The audit's probe: two POSTs over six intervals, then silence until repeat_interval."""
    hook.script("/hook", *[Answer(500, "down")] * 4)
    e = engine(config(hook.url("/hook")))
    try:
        e.evaluate(HOT, now=0)
        for t in range(60, 420, 60):       # six group intervals
            e.tick(t)
        assert e.wait_idle(10)
    finally:
        e.close(2)
    assert [r.status for r in hook.requests] == [500, 500, 500, 500, 200]  # then accepted: nothing more
    assert all(r.body["alerts"][0]["status"] == "firing" for r in hook.requests)


def test_the_notification_log_records_only_what_the_receiver_accepted(hook):
    hook.script("/hook", Answer(503, "busy"))
    e = engine(config(hook.url("/hook")))
    try:
        e.evaluate(HOT, now=0)
        assert e.wait_idle(10)
        assert e.state()["dispatch"]["nflog"] == []      # refused: the receiver knows nothing
        e.tick(60)
        assert e.wait_idle(10)
        (entry,) = e.state()["dispatch"]["nflog"]
        assert entry["receiver"] == "h" and len(entry["firing"]) == 1 and entry["ts"] == 60
    finally:
        e.close(2)


def test_a_failed_resolve_is_retried_and_the_group_then_forgotten(hook):
    e = engine(config(hook.url("/hook")))
    try:
        e.evaluate(HOT, now=0)
        assert e.wait_idle(10)
        hook.script("/hook", Answer(500, "down"), Answer(502, "bad gateway"))
        e.evaluate(COLD, now=30)
        for t in (60, 120, 180):
            e.tick(t)
        assert e.wait_idle(10)
        assert [(r.status, r.body["status"]) for r in hook.requests] == [
            (200, "firing"), (500, "resolved"), (502, "resolved"), (200, "resolved")]
        assert e.dispatcher.groups == {} and e.dispatcher.nflog == {}
    finally:
        e.close(2)


class SlowlyFailing(Sink):
    """Fails (transiently) until told otherwise; the long backoff keeps a notification waiting."""

    type = "webhook"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.tries = []

    def send(self, n):
        self.tries.append(n)
        raise TransientError("connection error: ConnectionRefusedError")


def test_news_that_is_no_longer_news_is_superseded_not_dead_lettered(tmp_path):
    """A trigger still retrying when its alert resolves (nobody was told) is dropped."""
    cfg = config("http://127.0.0.1:9/x", retry={"max_attempts": 50, "initial_backoff": "5s", "max_backoff": "5s"})
    sink = SlowlyFailing(cfg.sinks[0])
    e = AlertEngine.from_config(cfg, registry=CollectorRegistry(), background=False, sinks={"h": sink},
                                dead_letter_path=str(tmp_path / "dl.jsonl"))
    try:
        e.evaluate(HOT, now=0)
        deadline = time.monotonic() + 5
        while not sink.tries and time.monotonic() < deadline:
            time.sleep(0.01)
        e.evaluate(COLD, now=30)
        t0 = time.monotonic()
        e.tick(60)                       # resolved before anyone was told: nothing left to say
        assert e.wait_idle(10)
        assert time.monotonic() - t0 < 4  # the 5 s backoff was cut short
    finally:
        e.close(2)
    assert len(sink.tries) == 1
    assert e.metrics.superseded.labels(sink="h")._value.get() == 1
    assert read_dead_letters(tmp_path / "dl.jsonl") == []
    assert e.dispatcher.groups == {}


def test_failures_are_exported_per_stage_and_sink(hook, tmp_path):
    hook.script("/hook", Answer(500, "down"), Answer(500, "down"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    reg = CollectorRegistry()
    e = stepped().from_config(config(hook.url("/hook")), registry=reg, background=False,
                              dead_letter_path=str(blocker / "dl.jsonl"))   # not writable: a folder under a file
    try:
        e.evaluate(HOT, now=0)
        e.tick(60)
        assert e.wait_idle(10)
    finally:
        e.close(2)
    text = generate_latest(reg).decode()
    assert 'raywatch_notification_failures_total{sink="h",stage="send"} 2.0' in text
    assert 'raywatch_notification_failures_total{sink="h",stage="dead_letter"} 2.0' in text
    assert 'raywatch_notification_failures_total{sink="h",stage="queue"} 0.0' in text
    assert 'raywatch_notifications_sent_total{sink="h"} 0.0' in text


# --------------------------------------------------------------------------- dead letters and replay


def test_a_later_delivery_settles_the_dead_letter_and_replay_sends_nothing_stale(hook, tmp_path):
    dl = tmp_path / "dl.jsonl"
    hook.script("/hook", Answer(500, "down"))
    cfg = config(hook.url("/hook"))
    e = engine(cfg, dead_letter_path=str(dl))
    try:
        e.evaluate(HOT, now=0)            # refused: dead-lettered
        e.tick(60)                        # retried at the group interval: accepted
        e.evaluate(COLD, now=90)
        e.tick(120)                       # resolved, accepted
        assert e.wait_idle(10)
    finally:
        e.close(2)
    assert [(r.status, r.body["status"]) for r in hook.requests] == [(500, "firing"), (200, "firing"), (200, "resolved")]
    assert len(read_dead_letters(dl)) == 1 and len(read_dead_letters(dl, markers=True)) == 2
    result = replay_dead_letters(dl, cfg)
    assert result.to_dict() == {"sent": 0, "failed": 0, "skipped": 0, "remaining": 0, "superseded": 1, "best_effort": 0}
    assert len(hook.requests) == 3        # the stale trigger did not reopen the incident
    assert dl.read_text() == ""


def letter(sink, status, created_at, group="{}:{alertname=\"HighErrors\"}", fp="f1"):
    n = Notification.build(sink, group, {"alertname": "HighErrors"}, [
        {"status": status, "labels": dict(M, alertname="HighErrors", severity="critical"), "annotations": {},
         "startsAt": "2026-01-01T00:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fp}],
        created_at=created_at)
    return n


def test_replay_sends_only_the_newest_state_of_a_group(hook, tmp_path):
    """A resolve written before its (older, longer-retried) trigger: the trigger is stale."""
    dl_path = tmp_path / "dl.jsonl"
    dl = DeadLetterFile(dl_path)
    assert dl.write("h", "webhook", letter("h", "resolved", 200.0), "HTTP 500", 3, 500)
    assert dl.write("h", "webhook", letter("h", "firing", 100.0), "HTTP 500", 6, 500)
    assert dl.write("h", "webhook", letter("h", "firing", 150.0, group='{}:{alertname="Other"}', fp="f2"), "HTTP 500", 6, 500)
    result = replay_dead_letters(dl_path, config(hook.url("/hook")))
    assert result.to_dict() == {"sent": 2, "failed": 0, "skipped": 0, "remaining": 0, "superseded": 1, "best_effort": 0}
    sent = [(r.body["groupKey"], r.body["status"]) for r in hook.requests]
    assert sent == [('{}:{alertname="HighErrors"}', "resolved"), ('{}:{alertname="Other"}', "firing")]


def test_a_dead_letter_written_during_a_replay_is_kept(hook, tmp_path):
    """The live engine appends while the CLI replays: nothing is lost between them."""
    dl_path = tmp_path / "dl.jsonl"
    live = DeadLetterFile(dl_path)
    assert live.write("h", "webhook", letter("h", "firing", 100.0), "HTTP 500", 1, 500)
    late = letter("h", "firing", 300.0, group='{}:{alertname="Late"}', fp="f9")

    def meanwhile(req):
        live.write("h", "webhook", late, "HTTP 500", 1, 500)   # in the live engine, during the replay
        return Answer(200, "ok")

    hook.routes[("POST", "/hook")] = meanwhile
    result = replay_dead_letters(dl_path, config(hook.url("/hook")))
    assert result.sent == 1 and result.remaining == 1
    (kept,) = read_dead_letters(dl_path)
    assert kept["notification"]["id"] == late.id


def test_replay_skips_a_letter_the_live_engine_settled_while_it_ran(hook, tmp_path):
    dl_path = tmp_path / "dl.jsonl"
    live = DeadLetterFile(dl_path)
    for i, group in enumerate(("A", "B")):
        live.write("h", "webhook", letter("h", "firing", 100.0 + i, group=group, fp=group), "HTTP 500", 1, 500)

    def meanwhile(req):  # while A is replayed, the live engine delivers B's newer state
        if req.body["groupKey"] == "A":
            live.settle("h", "B", 200.0)
        return Answer(200, "ok")

    hook.routes[("POST", "/hook")] = meanwhile
    result = replay_dead_letters(dl_path, config(hook.url("/hook")))
    assert [r.body["groupKey"] for r in hook.requests] == ["A"]
    assert (result.sent, result.superseded, result.remaining) == (1, 1, 0)


def test_one_replay_at_a_time(tmp_path, hook):
    from raywatch.alerts.deadletter import ReplayBusy, file_lock

    dl_path = tmp_path / "dl.jsonl"
    DeadLetterFile(dl_path).write("h", "webhook", letter("h", "firing", 1.0), "HTTP 500", 1, 500)
    with file_lock(dl_path, suffix=".replay.lock"):
        with pytest.raises(ReplayBusy):
            replay_dead_letters(dl_path, config(hook.url("/hook")))
    assert hook.requests == [] and len(read_dead_letters(dl_path)) == 1


def test_dead_letter_files_are_owner_only_from_creation(tmp_path):
    old = os.umask(0o022)
    try:
        dl = DeadLetterFile(tmp_path / "state" / "dl.jsonl")
        assert dl.write("h", "webhook", letter("h", "firing", 1.0), "HTTP 500", 1, 500)
    finally:
        os.umask(old)
    for p in (tmp_path / "state" / "dl.jsonl", tmp_path / "state" / "dl.jsonl.lock"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


def test_version_1_files_still_replay(tmp_path, hook):
    """Files written before markers existed (no ``kind``) read as dead letters."""
    dl_path = tmp_path / "dl.jsonl"
    rec = {"version": 1, "ts": "2026-01-01T00:00:00.000Z", "sink": "h", "sink_type": "webhook", "reason": "x",
           "status": 500, "attempts": 1, "notification": letter("h", "firing", 1.0).to_dict()}
    dl_path.write_text(json.dumps(rec) + "\n")
    assert replay_dead_letters(dl_path, config(hook.url("/hook"))).sent == 1


# --------------------------------------------------------------------------- the Watchdog


def test_the_watchdog_fires_by_default_and_repeats(make_engine):
    e = make_engine({"rules": RULES, "watchdog": True, "sinks": [{"name": "a", "type": "log"}],
                     "route": {"receiver": "a", "group_wait": "0s", "group_interval": "1m", "repeat_interval": "5m"}})
    assert e.evaluate([], now=0) == []            # no rule changed: the Watchdog is no rule's transition
    for t in range(60, 660, 60):
        e.evaluate([], now=t)
    names = [(n.alerts[0]["labels"]["alertname"], n.alerts[0]["labels"]["severity"], n.created_at) for n in got(e, "a")]
    assert names == [("Watchdog", "none", 0), ("Watchdog", "none", 300), ("Watchdog", "none", 600)]
    assert [a["alertname"] for a in e.alerts()] == ["Watchdog"]
    assert 'alertname="Watchdog"' in generate_latest(e.metrics.registry).decode()
    assert AlertingConfig().watchdog.enabled   # on by default


def test_the_watchdog_has_its_own_receiver_and_can_be_turned_off(make_engine):
    base = {"rules": RULES, "sinks": [{"name": "slack", "type": "log"}, {"name": "deadman", "type": "log"}],
            "route": {"receiver": "slack", "group_wait": "0s"}}
    e = make_engine(dict(base, watchdog={"receiver": "deadman", "repeat_interval": "1m", "labels": {"team": "sre"}}))
    for t in range(0, 200, 30):
        e.evaluate(HOT, now=t)
    assert [n.alerts[0]["labels"]["alertname"] for n in got(e, "slack")] == ["HighErrors"]
    dm = got(e, "deadman")
    assert [n.created_at for n in dm] == [0, 60, 120, 180] and dm[0].alerts[0]["labels"]["team"] == "sre"
    off = make_engine(dict(base, watchdog=False))
    off.evaluate(HOT, now=0)
    assert [n.alerts[0]["labels"]["alertname"] for n in got(off, "slack")] == ["HighErrors"]
    assert [a["alertname"] for a in off.alerts()] == ["HighErrors"]


def test_the_watchdog_reaches_alertmanager_directly_and_never_resolves(make_engine):
    from alert_helpers import DirectRecordingSink

    cfg = AlertingConfig.model_validate({"rules": RULES, "sinks": [{"name": "am", "type": "alertmanager",
                                                                     "url": "http://127.0.0.1:9", "resend_delay": "1m"}]})
    e = stepped().from_config(cfg, registry=CollectorRegistry(), background=False,
                              sinks={"am": DirectRecordingSink(cfg.sinks[0])})
    try:
        e.evaluate([], now=0)
        e.evaluate([], now=60)
        e.resolve_all("configuration replaced", now=70)
        pushes = got(e, "am")
    finally:
        e.close(2)
    assert [[(a["labels"]["alertname"], a["status"]) for a in n.alerts] for n in pushes] == [
        [("Watchdog", "firing")], [("Watchdog", "firing")]]


def test_watchdog_receiver_must_be_a_routed_sink():
    from raywatch.config import ConfigError, validate

    with pytest.raises(ConfigError, match="watchdog.receiver: no sink named 'nope'"):
        validate(AlertingConfig, {"watchdog": {"receiver": "nope"}, "sinks": [{"name": "a", "type": "log"}]}, "m.yaml")


# --------------------------------------------------------------------------- rotated secrets


def test_a_rotated_slack_url_gets_the_next_notification_and_the_old_one_nothing(monkeypatch):
    from raywatch.alerts.hub import AlertingHub
    from raywatch.config import parse_config

    slack = HTTPReceiver(validators={"/services/": check_slack})
    try:
        raw = {"rules": RULES, "watchdog": False, "route": {"receiver": "slack", "group_wait": "0s", "group_interval": "1s"},
               "sinks": [{"name": "slack", "type": "slack", "webhook_url": "${RW_TEST_SLACK_URL}"}]}
        monkeypatch.setenv("RW_TEST_SLACK_URL", slack.url("/services/T0/B0/OLDTOKEN"))
        old_cfg = parse_config(raw, AlertingConfig)
        hub = AlertingHub(registry=CollectorRegistry(), background=False)
        rows = []
        hub.evaluate([(old_cfg, HOT)], 100.0, rows.append)
        slack.wait_for(1, "/services/T0/B0/OLDTOKEN")
        old_engine = next(iter(hub.engines.values()))
        assert old_engine.wait_idle(5)

        monkeypatch.setenv("RW_TEST_SLACK_URL", slack.url("/services/T0/B0/NEWTOKEN"))
        new_cfg = parse_config(raw, AlertingConfig)            # same data, another secret
        hub.evaluate([(new_cfg, HOT)], 101.0, rows.append)      # still firing: nothing to say
        hub.evaluate([(new_cfg, COLD)], 102.0, rows.append)     # resolved: the next notification
        eng = next(iter(hub.engines.values()))
        assert eng is not old_engine
        eng.tick(103.0)
        (resolved,) = slack.wait_for(1, "/services/T0/B0/NEWTOKEN")
        assert resolved.body["text"].startswith("[RESOLVED:1] HighErrors")
        assert "resolved_reason" not in json.dumps(resolved.body)          # not "configuration replaced"
        assert [r.path for r in slack.requests].count("/services/T0/B0/OLDTOKEN") == 1
        assert [(r["alertname"], r["state"]) for r in rows] == [("HighErrors", "firing"), ("HighErrors", "resolved")]
        hub.close(timeout=5)
    finally:
        slack.close()


def test_a_read_only_dead_letter_file_can_still_be_read(tmp_path, monkeypatch):
    """A copy on a read-only mount: no lock file can be made there (and no one appends)."""
    from raywatch.alerts import deadletter

    dl_path = tmp_path / "dl.jsonl"
    DeadLetterFile(dl_path).write("h", "webhook", letter("h", "firing", 1.0), "HTTP 500", 1, 500)
    real = deadletter._open_private

    def refuse_locks(path, flags):
        if str(path).endswith(".lock"):
            raise PermissionError(13, "Read-only file system")
        return real(path, flags)

    monkeypatch.setattr(deadletter, "_open_private", refuse_locks)
    assert len(read_dead_letters(dl_path)) == 1


# --------------------------------------------------------------------------- a model moving to another shard


def test_a_moved_models_alerts_leave_a_shared_group_quietly_and_go_on_at_the_new_engine(hook):
    """Two models' alerts in one group (grouped by alert name): the moving model's alerts leave
    the old engine without a word, the other model's group is not notified again, and the new
    engine (the same configuration on another shard) is told nothing new until the moved alert
    resolves, which it sends."""
    other = dict(M, deployment="Risk")
    hot = HOT + [Series("error_rate", other, 0.5)]
    cfg = config(hook.url("/hook"), route={"receiver": "h", "group_wait": "0s", "group_interval": "1m",
                                           "repeat_interval": "1h", "group_by": ["alertname"]})
    old, new = engine(cfg), engine(cfg)
    try:
        old.evaluate(hot, now=0)
        assert old.wait_idle(10)
        assert [sorted(a["labels"]["deployment"] for a in r.body["alerts"]) for r in hook.requests] == [["Fraud", "Risk"]]
        taken = old.take_alerts(lambda labels: labels.get("deployment") == "Fraud", now=30)
        assert [d["alert"]["labels"]["deployment"] for (items,) in [list(taken["rules"].values())] for d in items] == ["Fraud"]
        assert [len(e["firing"]) for e in taken["nflog"]] == [1]
        assert old.take_alerts(lambda labels: labels.get("deployment") == "Fraud") is None  # nothing left of it
        assert new.give_alerts(taken, now=30) == 1
        for t in (60, 120):  # the old engine keeps the other model; the new one the moved model
            old.evaluate([Series("error_rate", other, 0.5)], now=t)
            new.evaluate(HOT, now=t)
        assert old.wait_idle(10) and new.wait_idle(10)
        assert len(hook.requests) == 1  # nobody told twice, nothing resolved by the move
        assert [a["labels"]["deployment"] for a in new.alerts()] == ["Fraud"]
        assert [a["labels"]["deployment"] for a in old.alerts()] == ["Risk"]
        new.evaluate(COLD, now=180)
        new.tick(240)
        assert new.wait_idle(10)
        last = hook.requests[-1].body
        assert len(hook.requests) == 2 and [(a["labels"]["deployment"], a["status"]) for a in last["alerts"]] == [
            ("Fraud", "resolved")]
    finally:
        old.close(2)
        new.close(2)
