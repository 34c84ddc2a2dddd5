"""``raywatch.actor.history(key)`` when another shard runs a raywatch from before
``StatsActor.stored_alerts`` (a shard added after an upgrade, beside shards started before it):
the owner's history comes back whole, the old shard's stored transitions stay unread (logged),
and nothing raises. The real two-shard path is ``test_shards_ray.py`` (f); an old release's
actor cannot be started here, so its handle is stood in for by one without the method, as
Ray's handle of such an actor is (an ``AttributeError`` when the method is named)."""

import logging

from raywatch.actor import api


class _Call:
    def __init__(self, value):
        self._value = value

    def remote(self, *args):
        return self._value


class _Handle:
    def __init__(self, history=None, stored=None):
        if history is not None:
            self.history = _Call(history)
        if stored is not None:
            self.stored_alerts = _Call(stored)


class _Ray:
    @staticmethod
    def get(refs, timeout=None):
        return list(refs)


def _history(monkeypatch, handles, owner):
    monkeypatch.setattr(api, "_ray", lambda: _Ray)
    monkeypatch.setattr(api, "actors", lambda config=None: handles)
    monkeypatch.setattr(api, "_owner", lambda model, h, config, timeout: owner)
    return api.history("app/Model", config=None)


def test_the_owners_history_and_every_other_shards_stored_transitions_merge_by_time(monkeypatch):
    owner = _Handle(history={"models": {"app/Model": {}}, "alerts": [{"ts": 5.0, "state": "resolved"}]})
    other = _Handle(stored=[{"ts": 1.0, "state": "firing"}])
    out = _history(monkeypatch, [(0, other), (1, owner)], owner)
    assert list(out["models"]) == ["app/Model"]
    assert [a["state"] for a in out["alerts"]] == ["firing", "resolved"]


def test_a_shard_without_stored_alerts_is_skipped_and_said(monkeypatch, caplog):
    owner = _Handle(history={"models": {"app/Model": {}}, "alerts": [{"ts": 5.0, "state": "firing"}]})
    old = _Handle(history={"models": {}, "alerts": []})  # no stored_alerts
    with caplog.at_level(logging.INFO, logger="raywatch.actor.api"):
        out = _history(monkeypatch, [(0, old), (1, owner)], owner)
    assert out["alerts"] == [{"ts": 5.0, "state": "firing"}] and list(out["models"]) == ["app/Model"]
    assert "predates stored_alerts" in caplog.text
