"""The dead-letter file: notifications that could not be delivered, one JSON object a line.

Each record holds everything needed to send the notification again except secrets: the
sink is referenced by name, and :func:`replay` re-reads its URL, keys and tokens from the
configuration. Replaying keeps, in the same file, only what fails again.

Record fields: ``version``, ``ts`` (UTC, RFC 3339), ``sink``, ``sink_type``, ``reason``,
``status`` (HTTP status or null), ``attempts``, ``notification`` (see
:class:`~raywatch.alerts.notification.Notification`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from raywatch.alerts.alert import iso
from raywatch.alerts.notification import Notification

log = logging.getLogger("raywatch.alerts.deadletter")

__all__ = ["DeadLetterFile", "read_dead_letters", "replay", "ReplayResult"]


class DeadLetterFile:
    """Thread-safe appender. With no path, records go to the log at ERROR (never lost silently)."""

    def __init__(self, path: Optional[Union[str, Path]]):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.error("cannot create the dead-letter directory %s (%s); undeliverable notifications "
                          "will be logged at ERROR instead", self.path.parent, exc.strerror or exc)
                self.path = None

    def write(self, sink: str, sink_type: str, notification: Notification, reason: str,
              attempts: int, status: Optional[int] = None) -> bool:
        record = {
            "version": 1,
            "ts": iso(time.time()),
            "sink": sink,
            "sink_type": sink_type,
            "reason": reason,
            "status": status,
            "attempts": attempts,
            "notification": notification.to_dict(),
        }
        line = json.dumps(record, separators=(",", ":"), default=str)
        if self.path is None:
            log.error("undeliverable notification for sink %s (no dead_letter_path configured): %s", sink, line)
            return False
        try:
            with self._lock:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            log.error("cannot write the dead-letter file %s (%s); the undeliverable notification for sink %s: %s",
                      self.path, exc.strerror or exc, sink, line)
            return False
        return True


def read_dead_letters(path: Union[str, Path]) -> List[Dict[str, Any]]:
    """All records of a dead-letter file (unparseable lines are logged and skipped)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            log.error("%s:%d: not a JSON record; left in place", p, i)
    return out


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
    Returns counts; the CLI's ``raywatch replay-dead-letters`` prints them.
    """
    from raywatch.alerts.delivery import deliver_with_retries
    from raywatch.alerts.metrics import AlertMetrics
    from raywatch.sinks import build_sink

    cfg = getattr(config, "alerting", config)
    p = Path(path)
    records = read_dead_letters(p)
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
    if p.exists():
        fd, tmp = tempfile.mkstemp(dir=str(p.parent), prefix=p.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in keep:
                fh.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")
        os.replace(tmp, p)
    result.remaining = len(keep)
    return result
