"""Checkpoints and recovery: the core's state to store rows, and back.

:func:`snapshot` turns the models, the feedback joiner, the alert engines' state and the
counters into the ``state`` rows of a checkpoint (JSON records; see
:mod:`raywatch.aggregate.store` for their formats). A part that cannot be written is left
out of this checkpoint and counted (``checkpoint.<part>``); the others are written.

:func:`recover` registers the stored models, restores the last checkpoint and replays the
journal after it. A record that cannot be read is counted (``recover.state``,
``recover.journal``) and skipped; a model whose stored configuration lacks its secrets
says so (``config_secrets``) and is counted (``register.secrets``, ``recover.secrets``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple

from raywatch.aggregate.data import decode, encode, fields, record
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.joiner import FeedbackJoiner
from raywatch.aggregate.journal import BATCH, FEEDBACK, FeedbackItem, decode_batch, decode_feedback
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.models import config_from_record
from raywatch.config import MonitorConfig
from raywatch.stats.batch import ReplicaBatch

if TYPE_CHECKING:  # the store imports this module through its v1 migration
    from raywatch.aggregate.store import Store

__all__ = ["snapshot", "recover", "COUNTERS_FORMAT", "ENGINE_FORMAT", "RECORD_VERSION"]

log = logging.getLogger("raywatch.aggregate.recovery")

COUNTERS_FORMAT, ENGINE_FORMAT, RECORD_VERSION = "raywatch.counters", "raywatch.alert-engine", 1
JOINER_KEY, COUNTERS_KEY, ENGINE_PREFIX = "__joiner__", "__counters__", "__engine__:"

Register = Callable[[str, Optional[MonitorConfig], Optional[bytes], Mapping[str, str]], ModelState]


def snapshot(models: Mapping[str, ModelState], joiner: FeedbackJoiner, engines: Mapping[str, Mapping[str, Any]],
             counters: Mapping[str, int], failures: Failures) -> Dict[str, Tuple[str, str]]:
    """``{key: (kind, JSON record)}`` rows of a checkpoint (see the module docstring)."""
    rows: Dict[str, Tuple[str, str]] = {}
    for key, ms in models.items():
        try:
            rows[key] = ("model", encode(ms.state()))
        except Exception as exc:
            failures.fail("checkpoint.model", exc)
    try:
        rows[JOINER_KEY] = ("joiner", encode(joiner.state()))
    except Exception as exc:
        failures.fail("checkpoint.joiner", exc)
    for key, st in engines.items():
        try:
            rows[ENGINE_PREFIX + key] = ("engine", encode(record(ENGINE_FORMAT, RECORD_VERSION, state=st)))
        except Exception as exc:
            failures.fail("checkpoint.alerts", exc)
    rows[COUNTERS_KEY] = ("counters", encode(record(COUNTERS_FORMAT, RECORD_VERSION, counters=dict(counters),
                                                     failures=dict(failures.counts))))
    return rows


def _models(store: "Store", register: Register, failures: Failures) -> int:
    migrated = store.migrated_configs
    n = 0
    for key, stored in store.load_models().items():
        unset: set = set()
        try:
            if key in migrated:  # this run migrated the file: the unpickled config, secrets included
                cfg = migrated[key]
            else:
                cfg, unset = config_from_record(decode(stored.config) if stored.config is not None else None)
        except Exception as exc:
            failures.fail("recover.config", exc)
            cfg = None
        ms = register(key, cfg, stored.profile, stored.labels)
        if unset:
            ms.config_secrets = "unset"
            failures.fail("recover.secrets", ValueError(
                f"model {key}: environment variable(s) {', '.join(sorted(unset))} not set in the stats actor"))
        n += 1
    return n


def recover(store: "Store", *, register: Register, models: Mapping[str, ModelState], joiner: FeedbackJoiner,
            restore_engines: Callable[[Dict[str, Mapping[str, Any]]], None], counters: Dict[str, int],
            failures: Failures, replay_batch: Callable[[ReplicaBatch, float], Any],
            replay_feedback: Callable[[List[FeedbackItem], float], Any]) -> Tuple[Dict[str, int], int]:
    """Load models, the last checkpoint and replay the journal after it; returns
    ``(figures, id of the last journal entry read)``."""
    stats = {"models": _models(store, register, failures), "states": 0, "replayed": 0}
    engines: Dict[str, Mapping[str, Any]] = {}
    for key, (kind, data) in store.load_state().items():
        try:
            rec = decode(data)
            if kind == "joiner":
                joiner.restore(rec)
            elif kind == "counters":
                rec = fields(rec, COUNTERS_FORMAT, RECORD_VERSION)
                counters.update(rec.get("counters") or {})
                failures.restore(rec.get("failures") or {})
            elif kind == "engine":
                engines[key[len(ENGINE_PREFIX):]] = fields(rec, ENGINE_FORMAT, RECORD_VERSION)["state"]
            elif kind == "model" and key in models:
                models[key].restore(rec)
                stats["states"] += 1
        except Exception as exc:
            failures.fail("recover.state", exc)
    restore_engines(engines)
    journal_id = store.checkpoint_journal_id()
    for jid, kind, _mk, data, blob in store.journal_after(journal_id):
        try:
            if kind == BATCH:
                b = decode_batch(data, blob)
                replay_batch(b, float(b.end_ts))
            elif kind == FEEDBACK:
                ts, items = decode_feedback(data)
                replay_feedback(items, ts)
            stats["replayed"] += 1
        except Exception as exc:
            failures.fail("recover.journal", exc)
        journal_id = jid
    counters["replayed"] += stats["replayed"]
    log.info("recovered from %s: %s", store.path, stats)
    return stats, journal_id
