"""Checkpoints and recovery: the core's state to store rows, and back.

:func:`snapshot` turns the models, the feedback joiner, the alert engines' state and the
counters into the ``state`` rows of a checkpoint (JSON records; see
:mod:`raywatch.aggregate.store` for their formats). A value inside a part that is not
stored data costs only itself (written as null, counted as ``checkpoint.value``); a part
that still cannot be written is left out of this checkpoint and counted
(``checkpoint.<part>``) — its row keeps the older checkpoint's, and the journal is kept
from there (the store trims only what every row includes).

:func:`recover` registers the stored models, restores the last checkpoint and replays the
journal after it, table by table: a table that cannot be read costs only itself
(``recover.models``, ``recover.state``, ``recover.journal``), and within a table a record
that cannot be read is counted and skipped. A model whose checkpoint row was read but whose
``models`` row was not (configuration and profile: the largest row, the likeliest to touch
a damaged page) keeps its figures: it is restored on the actor's configuration and marked
unregistered, so its replicas register it again with their next batch. Each state row includes the journal up to its
own ``journal_id``: a journal entry is replayed into a model (a batch) or into the
feedback joiner (a batch's predictions, labels) only when that part's row does not
include it yet. (A model whose row is older than the joiner's misses the scores of labels
joined in between; that only happens after a partial checkpoint, which was counted.)
A model whose stored configuration lacks its secrets says so (``config_secrets``) and is
counted (``register.secrets``, ``recover.secrets``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple

from raywatch.aggregate.data import decode, encode, encode_lenient, fields, record
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.joiner import FeedbackJoiner
from raywatch.aggregate.journal import BATCH, FEEDBACK, FeedbackItem, decode_batch, decode_feedback
from raywatch.aggregate.model import ModelState
from raywatch.aggregate.models import config_from_record
from raywatch.config import MonitorConfig
from raywatch.stats.batch import ReplicaBatch

if TYPE_CHECKING:  # the store imports this module through its v1 migration
    from raywatch.aggregate.store import Store

__all__ = ["snapshot", "engine_rows", "recover", "COUNTERS_FORMAT", "ENGINE_FORMAT", "RECORD_VERSION"]

log = logging.getLogger("raywatch.aggregate.recovery")

COUNTERS_FORMAT, ENGINE_FORMAT, RECORD_VERSION = "raywatch.counters", "raywatch.alert-engine", 1
JOINER_KEY, COUNTERS_KEY, ENGINE_PREFIX = "__joiner__", "__counters__", "__engine__:"

Register = Callable[[str, Optional[MonitorConfig], Optional[bytes], Mapping[str, str]], ModelState]


def engine_rows(engines: Mapping[str, Mapping[str, Any]], failures: Failures) -> Dict[str, Tuple[str, str]]:
    """The alert engines' rows of a checkpoint (also written alone, with a hand-over record:
    the engines' state without the alerts of the model that left)."""
    rows: Dict[str, Tuple[str, str]] = {}
    for key, st in engines.items():
        try:
            rows[ENGINE_PREFIX + key] = ("engine", encode_lenient(
                record(ENGINE_FORMAT, RECORD_VERSION, state=st),
                lambda path, exc, key=key: failures.fail("checkpoint.value", TypeError(f"alert engine {key}: {path}: {exc}"))))
        except Exception as exc:
            failures.fail("checkpoint.alerts", exc)
    return rows


def snapshot(models: Mapping[str, ModelState], joiner: FeedbackJoiner, engines: Mapping[str, Mapping[str, Any]],
             counters: Mapping[str, int], failures: Failures,
             refused: Optional[Mapping[str, int]] = None) -> Dict[str, Tuple[str, str]]:
    """``{key: (kind, JSON record)}`` rows of a checkpoint (see the module docstring)."""
    rows: Dict[str, Tuple[str, str]] = {}

    def bad(where: str) -> Callable[[str, BaseException], None]:
        return lambda path, exc: failures.fail("checkpoint.value", TypeError(f"{where}: {path}: {exc}"))

    for key, ms in models.items():
        try:
            rows[key] = ("model", encode_lenient(ms.state(), bad(f"model {key}")))
        except Exception as exc:
            failures.fail("checkpoint.model", exc)
    try:
        rows[JOINER_KEY] = ("joiner", encode_lenient(joiner.state(), bad("feedback joiner")))
    except Exception as exc:
        failures.fail("checkpoint.joiner", exc)
    rows.update(engine_rows(engines, failures))
    rows[COUNTERS_KEY] = ("counters", encode(record(COUNTERS_FORMAT, RECORD_VERSION, counters=dict(counters),
                                                     failures=dict(failures.counts), refused=dict(refused or {}))))
    return rows


def _models(store: "Store", register: Register, failures: Failures) -> int:
    migrated = store.migrated_configs
    n = 0
    try:
        stored_models = store.load_models()
    except Exception as exc:  # the table is unreadable: the others are still recovered
        failures.fail("recover.models", exc)
        return 0
    for key, stored in stored_models.items():
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
        ms.registered = stored.config is not None or stored.profile is not None
        if unset:
            ms.config_secrets = "unset"
            failures.fail("recover.secrets", ValueError(
                f"model {key}: environment variable(s) {', '.join(sorted(unset))} not set in the stats actor"))
        n += 1
    return n


def _orphan(key: str, rec: Any, register: Register, failures: Failures) -> None:
    """Register a model known only from its checkpoint row (its ``models`` row, which holds
    its configuration and profile, could not be read): on the actor's configuration, without
    a profile, and not registered, so that its replicas are asked to register it again (their
    next batch's reply is ``reregister``) and send both. Its figures are kept."""
    labels = rec.get("labels") if isinstance(rec, dict) else None
    ms = register(key, None, None, {k: str(v) for k, v in (labels or {}).items() if v})
    ms.registered = False
    failures.fail("recover.models", LookupError(
        f"model {key}: its checkpoint row was read but not its registration (configuration and profile): "
        "restored on the actor's configuration; its replicas are asked to register it again"))


def recover(store: "Store", *, register: Register, models: Mapping[str, ModelState], joiner: FeedbackJoiner,
            restore_engines: Callable[[Dict[str, Mapping[str, Any]]], None], counters: Dict[str, int],
            failures: Failures, replay_batch: Callable[..., Any],
            replay_feedback: Callable[[List[FeedbackItem], float], Any],
            refused: Optional[Dict[str, int]] = None,
            placement: Optional[Callable[[str, str, Any], None]] = None) -> Tuple[Dict[str, int], int]:
    """Load models, the last checkpoint and replay the journal after it; returns
    ``(figures, id of the last journal entry read)``. ``replay_batch(batch, now, model=,
    joiner=)`` says which parts still need the batch; ``placement(kind, key, record)`` takes
    the ``placement`` and ``handover`` rows (:mod:`raywatch.aggregate.rebalance`)."""
    stats = {"models": _models(store, register, failures), "states": 0, "replayed": 0}
    skipped = 0  # entries every part's checkpoint row already includes
    engines: Dict[str, Mapping[str, Any]] = {}
    included: Dict[str, int] = {}  # state key -> the journal id its row includes
    try:
        for key, kind, data, jid in store.state_rows():
            try:
                rec = decode(data)
                if kind == "joiner":
                    joiner.restore(rec)
                elif kind == "counters":
                    rec = fields(rec, COUNTERS_FORMAT, RECORD_VERSION)
                    counters.update(rec.get("counters") or {})
                    failures.restore(rec.get("failures") or {})
                    if refused is not None:
                        for k, v in (rec.get("refused") or {}).items():
                            refused[k] = refused.get(k, 0) + int(v)
                elif kind == "engine":
                    engines[key[len(ENGINE_PREFIX):]] = fields(rec, ENGINE_FORMAT, RECORD_VERSION)["state"]
                elif kind in ("placement", "handover"):
                    if placement is not None:
                        placement(kind, key, rec)
                elif kind == "model":
                    if key not in models:  # its models row was lost (a damaged table): the state still counts
                        _orphan(key, rec, register, failures)
                    models[key].restore(rec)
                    stats["states"] += 1
                included[key] = jid
            except Exception as exc:
                failures.fail("recover.state", exc)
    except Exception as exc:  # the table is unreadable from here on
        failures.fail("recover.state", exc)
    restore_engines(engines)
    journal_id = store.checkpoint_journal_id()
    joiner_has = included.get(JOINER_KEY, journal_id)
    try:
        for jid, kind, mk, data, blob in store.journal_after(journal_id):
            try:
                if kind == BATCH:
                    b = decode_batch(data, blob)
                    model, join = jid > included.get(b.model_key, journal_id), jid > joiner_has
                    if model or join:
                        replay_batch(b, float(b.end_ts), model=model, joiner=join)
                    else:
                        skipped += 1
                elif kind == FEEDBACK:
                    if jid > joiner_has:
                        ts, items = decode_feedback(data)
                        replay_feedback(items, ts)
                    else:
                        skipped += 1
                stats["replayed"] += 1
            except Exception as exc:
                failures.fail("recover.journal", exc)
            journal_id = jid
    except Exception as exc:  # the table is unreadable from here on
        failures.fail("recover.journal", exc)
    counters["replayed"] += stats["replayed"]
    log.info("recovered from %s: %s (%d journal entries already in their checkpoint rows)", store.path, stats, skipped)
    return stats, journal_id
