"""The dead-letter file: notifications that could not be delivered, one JSON object a line.

Each record holds everything needed to send the notification again except secrets: the
sink is referenced by name, and :func:`raywatch.alerts.replay.replay` re-reads its URL,
keys and tokens from the configuration. This module is the file format and its lock
(append, read, supersession, rewrite); replaying, which needs the sinks and the delivery
loop, lives apart.

Records (``version`` 2; version-1 lines, written before markers existed, read as dead letters):

* a **dead letter** (``kind: "dead_letter"``): ``ts`` (UTC, RFC 3339), ``sink``,
  ``sink_type``, ``reason``, ``status`` (HTTP status or null), ``attempts``,
  ``notification`` (see :class:`~raywatch.sinks.notification.Notification`);
* a **settled marker** (``kind: "settled"``): ``ts``, ``sink``, ``group_key``,
  ``fingerprints`` (for notifications pushed to a direct sink: the alerts concerned; null
  for a routed group), ``created_at`` and ``reason`` — the receiver has since been told
  something newer about that group (or alerts), or there is nothing left to tell it.

**Supersession.** A notification of a routed group carries the group's whole state, so
for each sink and group only the newest record counts (ordered by the notification's
``created_at`` on the engine's timeline, then by position in the file). A direct sink's
notification (Alertmanager: ``group_key`` :data:`~raywatch.sinks.notification.DIRECT`)
carries independent alerts, so there the newest record counts per alert fingerprint.
Replay sends only what no later record superseded: a stale "trigger" after its "resolve"
does not reopen an incident. :func:`latest` computes it.

**The lock protocol.** Every writer and the replay serialize on ``<file>.lock`` (an
``fcntl.flock`` exclusive lock on that owner-only file, next to the dead-letter file):

* an append (the live engine): lock, open ``<file>`` with ``O_APPEND|O_CREAT`` (mode 0600),
  write one line, fsync, close, unlock;
* a replay (:func:`raywatch.alerts.replay.replay`, also the CLI's ``raywatch
  replay-dead-letters``): holds ``<file>.replay.lock`` for its whole run (a second replay
  fails at once with :class:`ReplayBusy`); reads the file under ``<file>.lock`` and notes
  where it ended; sends without the lock (the live engine keeps appending); before each send
  re-reads what was appended meanwhile, so that a record superseded in the meantime is not
  sent; then, under ``<file>.lock`` again, reads the tail once more and replaces the file
  (temporary file, fsync, rename) with what is still undelivered *plus everything appended
  during the replay*. Nothing written during a replay is lost.

Files and the folder raywatch creates for them are owner-only from creation (0600 and 0700):
a dead letter names the alerts of your models.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from raywatch.sinks.notification import DIRECT, Notification, iso
from raywatch.stats.files import atomic_write

try:  # POSIX (Linux, macOS: where Ray runs)
    import fcntl
except ImportError:  # pragma: no cover - no advisory file locks: the threading lock still serializes a process
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("raywatch.alerts.deadletter")

__all__ = [
    "DeadLetterFile", "read_dead_letters", "rewrite_dead_letters", "latest", "units", "file_lock", "ReplayBusy",
    "VERSION", "DEAD_LETTER", "SETTLED",
]

VERSION = 2
"""The record format's version (``version`` of each line); version 1 lines are dead letters."""
DEAD_LETTER = "dead_letter"
SETTLED = "settled"
FILE_MODE = 0o600
DIR_MODE = 0o700

Unit = Tuple[str, str, str]  # (sink, "group" | "alert", group key | fingerprint)


class ReplayBusy(RuntimeError):
    """Another replay of the same dead-letter file is running."""


def kind(record: Mapping[str, Any]) -> str:
    return record.get("kind") or DEAD_LETTER


def units(record: Mapping[str, Any]) -> List[Unit]:
    """What a record speaks for: its sink's group, or (direct sinks) each of its alerts."""
    sink = str(record.get("sink"))
    if kind(record) == SETTLED:
        group, fps = record.get("group_key"), record.get("fingerprints")
    else:
        n = record.get("notification") or {}
        group = n.get("group_key")
        fps = [a.get("fingerprint") for a in n.get("alerts") or []] if group == DIRECT else None
    if group == DIRECT:
        return [(sink, "alert", str(fp)) for fp in fps or ()]
    return [(sink, "group", str(group))]


def created_at(record: Mapping[str, Any]) -> float:
    if kind(record) == SETTLED:
        return float(record.get("created_at") or 0.0)
    return float((record.get("notification") or {}).get("created_at") or 0.0)


def latest(records: Sequence[Mapping[str, Any]]) -> Dict[Unit, int]:
    """For each unit, the index of the newest record that speaks for it (``created_at``,
    then position)."""
    best: Dict[Unit, Tuple[float, int]] = {}
    for i, rec in enumerate(records):
        key = (created_at(rec), i)
        for u in units(rec):
            if u not in best or best[u] <= key:
                best[u] = key
    return {u: i for u, (_, i) in best.items()}


def current(records: Sequence[Dict[str, Any]]) -> Tuple[List[Tuple[int, Dict[str, Any]]], int]:
    """The dead letters no later record superseded, as ``(index, record)`` in file order (a
    direct sink's letter keeps only the alerts no later record speaks for), and how many
    dead letters were superseded. Settled markers are left out: once the superseded letters
    are gone, nothing older than a marker is left for it to settle."""
    newest = latest(records)
    out: List[Tuple[int, Dict[str, Any]]] = []
    dropped = 0
    for i, rec in enumerate(records):
        if kind(rec) == SETTLED:
            continue
        mine = [u for u in units(rec) if newest.get(u) == i]
        if not mine:
            dropped += 1
            continue
        n = rec.get("notification") or {}
        if n.get("group_key") == DIRECT and len(mine) < len(units(rec)):
            keep = {u[2] for u in mine}
            rec = dict(rec, notification=dict(n, alerts=[a for a in n["alerts"] if str(a.get("fingerprint")) in keep]))
        out.append((i, rec))
    return out, dropped


# --------------------------------------------------------------------------- files and locks


def _lock_path(path: Path, suffix: str = ".lock") -> Path:
    return path.with_name(path.name + suffix)


def _open_private(path: Path, flags: int) -> int:
    """An fd on ``path``, created owner-only (0600) whatever the umask."""
    fd = os.open(str(path), flags | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    return fd


@contextlib.contextmanager
def file_lock(path: Union[str, Path], *, suffix: str = ".lock", blocking: bool = True) -> Iterator[None]:
    """Hold the dead-letter file's lock (``<path>.lock``; ``suffix=".replay.lock"`` for the
    replay's). Non-blocking: :class:`ReplayBusy` when someone else holds it."""
    lp = _lock_path(Path(path), suffix)
    fd = _open_private(lp, os.O_RDWR)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise ReplayBusy(f"{path}: another replay of this dead-letter file is running") from None
                raise
        yield
    finally:
        os.close(fd)  # closing the fd releases the lock


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and its parents) owner-only, as raywatch's state folders are."""
    if not directory.exists():
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)


def _parse(data: bytes, where: str, first_line: int = 1) -> List[Dict[str, Any]]:
    out = []
    for i, line in enumerate(data.decode("utf-8", "replace").splitlines(), first_line):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            log.error("%s:%d: not a JSON record; left in place", where, i)
            continue
        if isinstance(rec, dict):
            out.append(rec)
        else:
            log.error("%s:%d: not a record (a JSON object); left in place", where, i)
    return out


def read_from(path: Union[str, Path], offset: int = 0) -> Tuple[List[Dict[str, Any]], int]:
    """Records from byte ``offset`` on (complete lines only) and the offset after them.
    Call it holding :func:`file_lock`."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1  # a line is complete once its newline is written
    return _parse(data[:end], str(p)), offset + end


def read_dead_letters(path: Union[str, Path], *, markers: bool = False) -> List[Dict[str, Any]]:
    """The dead letters of a file (with ``markers``, the settled markers too), in file
    order; unparseable lines are logged and skipped."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        with file_lock(p):
            records, _ = read_from(p)
    except PermissionError:  # a read-only copy: no lock file can be made, and no one appends there
        records, _ = read_from(p)
    return records if markers else [r for r in records if kind(r) == DEAD_LETTER]


def rewrite_dead_letters(path: Union[str, Path], records: Iterable[Dict[str, Any]], *, locked: bool = False) -> None:
    """Replace the file's records with ``records``, atomically (an owner-only temporary file,
    fsynced, renamed over it); nothing is written when the file does not exist. Takes the
    file's lock unless the caller holds it (``locked``)."""
    p = Path(path)
    if not p.exists():
        return
    with (contextlib.nullcontext() if locked else file_lock(p)):
        atomic_write(p, "".join(_line(rec) + "\n" for rec in records).encode("utf-8"))


class DeadLetterFile:
    """Thread- and process-safe appender (see the lock protocol above). With no path,
    records go to the log at ERROR (never lost silently).

    It remembers which groups (and direct alerts) of which sinks have a dead letter in the
    file, so that :meth:`settle` writes a marker only where one is needed.
    """

    def __init__(self, path: Optional[Union[str, Path]]):
        self.path = Path(path) if path else None
        self.configured = self.path is not None
        self._lock = threading.Lock()
        self._open: Dict[Unit, float] = {}
        if self.path is not None:
            try:
                make_private_dir(self.path.parent)
            except OSError as exc:
                log.error("cannot create the dead-letter directory %s (%s); undeliverable notifications "
                          "will be logged at ERROR instead", self.path.parent, exc.strerror or exc)
                self.path = None
        if self.path is not None and self.path.exists():
            try:
                with file_lock(self.path):
                    records, _ = read_from(self.path)
                newest = latest(records)
                self._open = {u: created_at(records[i]) for u, i in newest.items() if kind(records[i]) == DEAD_LETTER}
            except OSError as exc:
                log.error("cannot read the dead-letter file %s (%s)", self.path, exc.strerror or exc)

    @property
    def broken(self) -> bool:
        """A path was configured but the folder could not be created."""
        return self.configured and self.path is None

    def _append(self, record: Mapping[str, Any]) -> bool:
        line = _line(record)
        if self.path is None:
            return False
        try:
            with self._lock, file_lock(self.path):
                fd = _open_private(self.path, os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, (line + "\n").encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            log.error("cannot write the dead-letter file %s (%s); the record: %s", self.path, exc.strerror or exc, line)
            return False
        return True

    def write(self, sink: str, sink_type: str, notification: Notification, reason: str,
              attempts: int, status: Optional[int] = None) -> bool:
        """Append a dead letter; False when it could not be written (then it is logged)."""
        record = {
            "version": VERSION,
            "kind": DEAD_LETTER,
            "ts": iso(time.time()),
            "sink": sink,
            "sink_type": sink_type,
            "reason": reason,
            "status": status,
            "attempts": attempts,
            "notification": notification.to_dict(),
        }
        if self.path is None:
            log.error("undeliverable notification for sink %s (no dead_letter_path configured): %s", sink, _line(record))
            return False
        if not self._append(record):
            return False
        with self._lock:
            for u in units(record):
                self._open[u] = max(self._open.get(u, float("-inf")), notification.created_at)
        return True

    def settle(self, sink: str, group_key: str, at: float, fingerprints: Optional[Sequence[str]] = None,
               reason: str = "delivered") -> bool:
        """The receiver was told something as of ``at`` (or there is nothing left to tell it):
        dead letters of that group (or of those alerts, for a direct sink) written before are
        superseded. Appends a marker only when this file holds such a letter; True if it did."""
        if self.path is None:
            return False
        probe: Dict[str, Any] = {"kind": SETTLED, "sink": sink, "group_key": group_key,
                                 "fingerprints": list(fingerprints) if group_key == DIRECT else None}
        with self._lock:
            hit = [u for u in units(probe) if u in self._open and self._open[u] <= at]
        if not hit:
            return False
        if group_key == DIRECT:
            probe["fingerprints"] = [u[2] for u in hit]
        record = dict(probe, version=VERSION, ts=iso(time.time()), created_at=at, reason=reason)
        if not self._append(record):
            return False
        with self._lock:
            for u in hit:
                if self._open.get(u, float("inf")) <= at:
                    del self._open[u]
        return True
