"""The alert engines of a stats actor: one :class:`~raywatch.alerts.engine.AlertEngine` per
distinct alerting configuration.

The stats actor's core hands :meth:`AlertingHub.evaluate` each model's alerting
configuration with the model's series. Models with equal configurations share one engine.
An engine is keyed by the configuration's data *and* a hash of its resolved secret values,
so a rotated secret (a new webhook URL in the same ``${ENV}`` variable) builds a new engine
that posts to the new address; the old engine hands its state over (alerts, notification
log, undelivered notifications) and stops at once, so nothing resolves or fires again and
the old address hears nothing more. An engine no model uses any more (the configuration was
replaced) is retired: its firing alerts are resolved at once, with a ``resolved_reason``
annotation, so the receivers hear "resolved" instead of being left with an open incident;
then it is closed in the background (closing waits for queued deliveries).

Firing and resolved transitions are reported through the ``record`` callback given to
:meth:`evaluate`. :meth:`state` / :meth:`restore` carry the engines' state (JSON-able data)
by the configuration's data key — never by the secret hash, which is not stored — so a
restarted actor resumes its alerts.

>>> from prometheus_client import CollectorRegistry
>>> from raywatch.config import AlertingConfig
>>> from raywatch.series import Series
>>> cfg = AlertingConfig.model_validate({"rules": [{"name": "Errors", "expr": "error_rate > 0.1"}],
...                                      "sinks": [{"name": "log", "type": "log"}]})
>>> hub = AlertingHub(registry=CollectorRegistry(), background=False)
>>> rows = []
>>> hub.evaluate([(cfg, [Series("error_rate", {"app": "a", "deployment": "M"}, 0.5)])], 100.0, rows.append)
>>> [(r["alertname"], r["state"]) for r in rows], [a["labels"]["alertname"] for a in hub.alerts("a/M")]
([('Errors', 'firing')], ['Errors'])
>>> hub.close(timeout=5)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from raywatch.alerts.engine import AlertEngine
from raywatch.config import AlertingConfig, WatchdogConfig, secret_values
from raywatch.series import MODEL_LABELS, Series

__all__ = ["AlertingHub", "engine_key", "has_alerting"]

log = logging.getLogger("raywatch.alerts.hub")

REPLACED = "alerting configuration replaced"
WATCHDOG_SUFFIX = "+watchdog"  # the data key of an engine that runs the Watchdog
KEPT = ("firing", "resolved")  # the transitions the history keeps (pending ones are not)


def engine_key(cfg: AlertingConfig) -> Tuple[str, str]:
    """``(data key, secrets key)`` of an alerting configuration: a hash of its JSON dump
    (secrets masked) and a hash of its resolved secret values (kept in memory only)."""
    # the Watchdog at its defaults is left out, so that keys (and the saved states they name)
    # stay what they were before the Watchdog existed
    exclude = {"watchdog"} if cfg.watchdog == WatchdogConfig() else None
    blob = json.dumps(cfg.model_dump(mode="json", by_alias=True, exclude=exclude), sort_keys=True, default=str)
    secrets = hashlib.sha256("\0".join(secret_values(cfg)).encode()).hexdigest()[:16]
    return hashlib.sha1(blob.encode()).hexdigest()[:12], secrets


def has_alerting(cfg: AlertingConfig) -> bool:
    return bool(cfg.rules) or bool(cfg.sinks)


def _model_key(labels: Mapping[str, str]) -> str:
    return f"{labels.get(MODEL_LABELS[0])}/{labels.get(MODEL_LABELS[1])}"


def _transition(a: Any, now: float) -> Dict[str, Any]:
    labels = dict(a.labels)
    return {"ts": now, "alertname": labels.get("alertname"), "state": a.state, "severity": labels.get("severity"),
            "labels": labels, "annotations": dict(a.annotations), "value": a.value}


def _close_quietly(eng: AlertEngine) -> None:
    try:
        eng.close(timeout=10.0)
    except Exception as exc:  # pragma: no cover - best effort
        log.warning("closing a retired alert engine failed: %s", exc)


class AlertingHub:
    """The engines of one stats actor (see the module docstring).

    Parameters
    ----------
    registry
        prometheus_client registry for the engines' metrics.
    dead_letter_dir
        Folder of the engines' dead-letter files (``raywatch-dead-letters-<name>-<key>.jsonl``);
        None: the configuration's own ``dead_letter_path``.
    name
        The stats actor's name (in the dead-letter file names).
    background
        Run each engine's group-timer thread (False: flushes happen on evaluation only).
    on_failure
        Called with ``(stage, exception)`` for each failure (the actor counts them).
    """

    def __init__(self, *, registry: Any = None, dead_letter_dir: Optional[str] = None, name: str = "raywatch-stats",
                 background: bool = True, on_failure: Optional[Callable[[str, BaseException], None]] = None):
        self.registry = registry
        self.dead_letter_dir = dead_letter_dir
        self.name = name
        self.background = background
        self.engines: Dict[Tuple[str, str], AlertEngine] = {}
        self._pending_states: Dict[str, Mapping[str, Any]] = {}  # restored, for engines not built yet
        self._on_failure = on_failure

    def _fail(self, stage: str, exc: BaseException) -> None:
        if self._on_failure is not None:
            self._on_failure(stage, exc)
        else:
            log.error("alerting %s failed: %s: %s", stage, type(exc).__name__, exc)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, groups: Iterable[Tuple[Any, ...]], now: float,
                 record: Callable[[Dict[str, Any]], None]) -> None:
        """Run each configuration's engine over its series; ``record`` gets every firing or
        resolved transition. Engines of configurations no longer given are retired first,
        so a replaced configuration's alerts resolve before its successor's are set.

        A group is ``(config, series)`` or ``(config, series, watchdog)``: the Watchdog
        (raywatch's heartbeat) fires only from engines built with ``watchdog`` true — the stats
        actor gives it to its own group only, so one Watchdog fires per actor, not one per
        model's alerting configuration."""
        by_key: Dict[Tuple[str, str], Tuple[AlertingConfig, List[Series], bool]] = {}
        for cfg, series, *rest in groups:
            watchdog = bool(rest[0]) if rest else True
            data, secrets = engine_key(cfg)
            key = (data + WATCHDOG_SUFFIX if watchdog and cfg.watchdog.enabled else data, secrets)
            by_key.setdefault(key, (cfg, [], watchdog))[1].extend(series)
        self._retire(set(by_key), now, record)
        for key, (cfg, series, watchdog) in by_key.items():
            if not has_alerting(cfg):
                continue
            try:
                changed = self._engine(key, cfg, watchdog).evaluate(series, now=now)
            except Exception as exc:
                self._fail("alerts.evaluate", exc)
                continue
            self._record(changed, now, record)
        self._pending_states.clear()  # restored states no configuration uses any more

    def _engine(self, key: Tuple[str, str], cfg: AlertingConfig, watchdog: bool = True) -> AlertEngine:
        eng = self.engines.get(key)
        if eng is not None:
            return eng
        data_key = key[0]
        dead = None
        if self.dead_letter_dir:
            dead = os.path.join(self.dead_letter_dir, f"raywatch-dead-letters-{self.name}-{data_key}.jsonl")
        eng = AlertEngine.from_config(cfg, dead_letter_path=dead, registry=self.registry, background=self.background,
                                      watchdog=watchdog)
        state = self._pending_states.pop(data_key, None)
        if state is not None:
            try:
                eng.restore(state)
            except Exception as exc:
                self._fail("alerts.restore", exc)
        self.engines[key] = eng
        return eng

    def _record(self, changed: Iterable[Any], now: float, record: Callable[[Dict[str, Any]], None]) -> None:
        """Firing and resolved transitions to ``record`` (pending ones are not kept)."""
        for a in changed:
            if a.state in KEPT:
                try:
                    record(_transition(a, now))
                except Exception as exc:
                    self._fail("alerts.history", exc)

    def _retire(self, live: set, now: float, record: Callable[[Dict[str, Any]], None]) -> None:
        live_data = {k[0] for k in live}
        for key in [k for k in self.engines if k not in live]:
            eng = self.engines.pop(key)
            if key[0] in live_data:  # the same configuration with other secrets: its successor takes over
                try:
                    self._pending_states[key[0]] = eng.hand_over()
                    log.info("alert engine %s: secrets changed; its state moves to the new engine", key[0])
                except Exception as exc:
                    self._fail("alerts.handover", exc)
                continue
            try:
                self._record(eng.resolve_all(REPLACED, now=now), now, record)
            except Exception as exc:
                self._fail("alerts.retire", exc)
            # close() waits for queued deliveries: not on the caller's (the actor's) event loop
            threading.Thread(target=_close_quietly, args=(eng,), name="raywatch-engine-close", daemon=True).start()
            log.info("alert engine %s retired (no model uses its configuration now)", key[0])

    # ------------------------------------------------------------------ a model moving to another shard
    def take_model(self, model_key: str, now: Optional[float] = None) -> Dict[str, Dict[str, Any]]:
        """The alerts of one model (``"app/deployment"``), taken out of every engine without a
        word (:meth:`AlertEngine.take_alerts`), by engine data key: the model is handed over
        to another shard, whose :meth:`give_model` goes on with them."""
        out: Dict[str, Dict[str, Any]] = {}
        for (data_key, _), eng in list(self.engines.items()):
            try:
                got = eng.take_alerts(lambda labels: _model_key(labels) == model_key, now)
            except Exception as exc:
                self._fail("alerts.handover", exc)
                continue
            if got:
                out[data_key] = got
        return out

    def give_model(self, configs: Iterable[AlertingConfig], taken: Mapping[str, Mapping[str, Any]],
                   now: Optional[float] = None) -> int:
        """Go on with a model's alerts that another shard's :meth:`take_model` gave up.
        ``configs``: the alerting configurations the model's series go to here (the engine of
        each is built if it is not yet). Returns how many alerts were taken over."""
        by_data = {}
        for cfg in configs:
            data, secrets = engine_key(cfg)
            by_data[data] = ((data, secrets), cfg)
        n = 0
        for data_key, alerts in taken.items():
            hit = by_data.get(data_key)
            if hit is None:  # a configuration the model's series do not go to here: nothing goes on with them
                log.info("dropping the handed-over alerts of alerting configuration %s, unused on this shard", data_key)
                continue
            try:
                n += self._engine(hit[0], hit[1], False).give_alerts(alerts, now)
            except Exception as exc:
                self._fail("alerts.handover", exc)
        return n

    # ------------------------------------------------------------------ status, persistence
    def alerts(self, model_key: Optional[str] = None) -> List[Dict[str, Any]]:
        """Active alerts of every engine, of one model (``"app/deployment"``) or all."""
        out = []
        for eng in list(self.engines.values()):
            try:
                out.extend(a for a in eng.alerts() if model_key is None or _model_key(a.get("labels") or {}) == model_key)
            except Exception as exc:
                self._fail("alerts.read", exc)
        return out

    def state(self) -> Dict[str, Dict[str, Any]]:
        """Each engine's state by its configuration's data key (before the first evaluation,
        the restored states too)."""
        out: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in self._pending_states.items()}
        for (data_key, _), eng in self.engines.items():
            try:
                out[data_key] = eng.state()
            except Exception as exc:
                self._fail("checkpoint.alerts", exc)
        return out

    def restore(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """States by data key, applied when each engine is built (before its first evaluation)."""
        self._pending_states.update(states)

    def close(self, timeout: float = 10.0) -> None:
        """Close every engine (queued deliveries get ``timeout`` seconds each)."""
        for eng in list(self.engines.values()):
            try:
                eng.close(timeout=timeout)
            except Exception as exc:
                self._fail("alerts.close", exc)
