"""Replaying the dead-letter file: send its notifications again through the configured sinks.

Secrets come from the configuration, never from the file (a record names its sink). Only
what no later record superseded is sent (per sink and group, or per alert for a direct
sink; see :mod:`raywatch.alerts.deadletter`): a stale "trigger" whose "resolve" came later,
or whose group the live engine has since delivered, is dropped, never re-sent. What is
delivered leaves the file; what fails again stays, with its reason, status and attempts
updated.

The replay follows the file's lock protocol (:mod:`raywatch.alerts.deadletter`): it runs
alone (``<file>.replay.lock``; a second one raises :class:`~raywatch.alerts.deadletter.ReplayBusy`),
sends without blocking the live engine's appends, and keeps every record appended while it
ran. The CLI's ``raywatch replay-dead-letters`` calls :func:`replay` and prints the counts of
:class:`ReplayResult`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from raywatch.alerts.deadletter import DEAD_LETTER, ReplayBusy, current, file_lock, kind, read_from, rewrite_dead_letters
from raywatch.alerts.delivery import deliver_with_retries
from raywatch.alerts.metrics import AlertMetrics
from raywatch.config import AlertingConfig
from raywatch.sinks import build_sink
from raywatch.sinks.notification import Notification, iso

log = logging.getLogger("raywatch.alerts.replay")

__all__ = ["replay", "ReplayResult", "ReplayBusy"]


@dataclass
class ReplayResult:
    """``sent``: accepted by their receivers; ``best_effort``: handed to a transport that does
    not acknowledge (DogStatsD); ``failed``: failed again (kept); ``skipped``: other or unknown
    sinks (kept); ``superseded``: dropped because a later record of the same group (or alert)
    replaced them; ``remaining``: records left in the file."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    remaining: int = 0
    superseded: int = 0
    best_effort: int = 0

    def to_dict(self) -> Dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "skipped": self.skipped, "remaining": self.remaining,
                "superseded": self.superseded, "best_effort": self.best_effort}


class _View:
    """The file as this replay knows it: the records read so far (the replay's own, then
    whatever the live engine appended meanwhile)."""

    def __init__(self, path: Path):
        self.path = path
        with file_lock(path):
            self.records, self.offset = read_from(path)
        self._letters: Optional[Dict[int, Dict[str, Any]]] = None

    def refresh(self, *, locked: bool = False) -> None:
        with (contextlib.nullcontext() if locked else file_lock(self.path)):
            more, self.offset = read_from(self.path, self.offset)
        if more:
            self.records.extend(more)
            self._letters = None

    def letter(self, i: int) -> Optional[Dict[str, Any]]:
        """Record ``i`` as it is to be sent now, or None when a later record superseded it."""
        if self._letters is None:
            self._letters = dict(current(self.records)[0])
        return self._letters.get(i)


def replay(path: Union[str, Path], config: Any, *, sinks: Optional[Sequence[str]] = None,
           max_attempts: Optional[int] = None, registry: Any = None) -> ReplayResult:
    """Send the dead letters in ``path`` again through the sinks of ``config``.

    ``config`` is an ``AlertingConfig`` or ``MonitorConfig`` (secrets come from it, not from
    the file). ``sinks`` limits the replay to those sink names. Records that are delivered
    are removed from the file, superseded ones too; the rest (failures, unknown sinks, other
    sinks) stay. Raises :class:`ReplayBusy` when another replay of the file is running.
    """
    cfg = AlertingConfig.of(config)
    p = Path(path)
    result = ReplayResult()
    if not p.exists():
        return result
    by_name = {s.name: s for s in cfg.sinks}
    built: Dict[str, Any] = {}
    metrics = AlertMetrics.for_registry(registry) if registry is not None else None
    with file_lock(p, suffix=".replay.lock", blocking=False):
        view = _View(p)
        mine = len(view.records)
        done: set = set()      # indices delivered: they leave the file
        updated: Dict[int, Dict[str, Any]] = {}
        try:
            for i in range(mine):
                rec = view.records[i]
                if kind(rec) != DEAD_LETTER:
                    continue
                name = rec.get("sink")
                if (sinks is not None and name not in sinks) or name not in by_name:
                    if name not in by_name:
                        log.warning("dead letter for unknown sink %r kept (not in the configuration)", name)
                    result.skipped += 1
                    continue
                view.refresh()  # the live engine may have delivered or settled this group meanwhile
                letter = view.letter(i)
                if letter is None:
                    continue  # superseded: dropped (and counted) when the file is rewritten
                sink = built.get(name)
                if sink is None:
                    sink = built[name] = build_sink(by_name[name])
                retry = by_name[name].retry
                if max_attempts is not None:
                    retry = retry.model_copy(update={"max_attempts": max_attempts})
                n = Notification.from_dict(letter["notification"])
                ok, err, attempts = deliver_with_retries(sink, n, retry, metrics=metrics)
                if ok:
                    done.add(i)
                    if sink.acknowledged:
                        result.sent += 1
                    else:
                        result.best_effort += 1
                else:
                    result.failed += 1
                    updated[i] = dict(rec, reason=sink.redact(str(err)), status=getattr(err, "status", None),
                                      attempts=int(rec.get("attempts") or 0) + attempts, ts=iso(time.time()))
        finally:
            for s in built.values():
                s.close()
            with file_lock(p):
                view.refresh(locked=True)  # what the live engine appended while we sent: kept
                merged = [updated.get(i, r) for i, r in enumerate(view.records)]
                live, superseded = current(merged)
                keep = [r for i, r in live if i not in done]
                result.superseded = superseded
                rewrite_dead_letters(p, keep, locked=True)
    result.remaining = len(keep)
    return result
