"""The dead-letter file: notifications that could not be delivered, one JSON object a line.

Each record holds everything needed to send the notification again except secrets: the
sink is referenced by name, and :func:`raywatch.alerts.replay.replay` re-reads its URL,
keys and tokens from the configuration. This module is the file format alone (append,
read, rewrite); replaying, which needs the sinks and the delivery loop, lives apart.

Record fields: ``version``, ``ts`` (UTC, RFC 3339), ``sink``, ``sink_type``, ``reason``,
``status`` (HTTP status or null), ``attempts``, ``notification`` (see
:class:`~raywatch.sinks.notification.Notification`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

from raywatch.sinks.notification import iso
from raywatch.sinks.notification import Notification

log = logging.getLogger("raywatch.alerts.deadletter")

__all__ = ["DeadLetterFile", "read_dead_letters", "rewrite_dead_letters", "VERSION"]

VERSION = 1
"""The record format's version (``version`` of each line)."""


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
            "version": VERSION,
            "ts": iso(time.time()),
            "sink": sink,
            "sink_type": sink_type,
            "reason": reason,
            "status": status,
            "attempts": attempts,
            "notification": notification.to_dict(),
        }
        line = _line(record)
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


def _line(record: Dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)


def rewrite_dead_letters(path: Union[str, Path], records: Iterable[Dict[str, Any]]) -> None:
    """Replace the file's records with ``records``, atomically (a temporary file renamed
    over it); nothing is written when the file does not exist."""
    p = Path(path)
    if not p.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=str(p.parent), prefix=p.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(_line(rec) + "\n")
    os.replace(tmp, p)
