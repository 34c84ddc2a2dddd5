"""Replaying the dead-letter file: send its notifications again through the configured sinks.

Secrets come from the configuration, never from the file (a record names its sink). What is
delivered leaves the file; what fails again stays, with its reason, status and attempts
updated. The CLI's ``raywatch replay-dead-letters`` prints the counts of :class:`ReplayResult`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from raywatch.alerts.deadletter import read_dead_letters, rewrite_dead_letters
from raywatch.alerts.delivery import deliver_with_retries
from raywatch.alerts.metrics import AlertMetrics
from raywatch.config import AlertingConfig
from raywatch.sinks import build_sink
from raywatch.sinks.notification import Notification, iso

log = logging.getLogger("raywatch.alerts.replay")

__all__ = ["replay", "ReplayResult"]


@dataclass
class ReplayResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    remaining: int = 0

    def to_dict(self) -> Dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "skipped": self.skipped, "remaining": self.remaining}


def replay(path: Union[str, Path], config: Any, *, sinks: Optional[Sequence[str]] = None,
           max_attempts: Optional[int] = None, registry: Any = None) -> ReplayResult:
    """Send the dead letters in ``path`` again through the sinks of ``config``.

    ``config`` is an ``AlertingConfig`` or ``MonitorConfig`` (secrets come from it, not from
    the file). ``sinks`` limits the replay to those sink names. Records that are delivered
    are removed from the file; the rest (failures, unknown sinks, other sinks) stay.
    """
    cfg = AlertingConfig.of(config)
    records = read_dead_letters(path)
    by_name = {s.name: s for s in cfg.sinks}
    built: Dict[str, Any] = {}
    metrics = AlertMetrics.for_registry(registry) if registry is not None else None
    keep: List[Dict[str, Any]] = []
    result = ReplayResult()
    for rec in records:
        name = rec.get("sink")
        if (sinks is not None and name not in sinks) or name not in by_name:
            if name not in by_name:
                log.warning("dead letter for unknown sink %r kept (not in the configuration)", name)
            result.skipped += 1
            keep.append(rec)
            continue
        sink = built.get(name)
        if sink is None:
            sink = built[name] = build_sink(by_name[name])
        n = Notification.from_dict(rec["notification"])
        retry = by_name[name].retry
        if max_attempts is not None:
            retry = retry.model_copy(update={"max_attempts": max_attempts})
        ok, err, attempts = deliver_with_retries(sink, n, retry, metrics=metrics)
        if ok:
            result.sent += 1
        else:
            result.failed += 1
            rec = dict(rec, reason=sink.redact(str(err)), status=getattr(err, "status", None),
                       attempts=int(rec.get("attempts") or 0) + attempts, ts=iso(time.time()))
            keep.append(rec)
    for s in built.values():
        s.close()
    rewrite_dead_letters(path, keep)
    result.remaining = len(keep)
    return result
