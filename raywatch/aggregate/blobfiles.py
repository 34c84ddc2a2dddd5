"""The ingest journal's window summaries, in append-only files beside the store.

A journaled batch is a small JSON row in the store's ``journal`` table and its window summary
(the summary codec's bytes, ~35 KB for 20 columns whatever the batch's rows). Written into
SQLite, each summary was written twice — into the WAL, then into the database at the WAL's
checkpoint — and its pages freed again when the journal was trimmed: about 100 µs a batch on the
stats actor's writer thread, most of a batch's journal cost. Here the summaries are appended
to files, one ``writev`` a group commit, and the row keeps where its summary is: ``(file,
offset, length)`` in the ``blob_seg``, ``blob_off`` and ``blob_len`` columns.

Layout: the folder ``<store file>.blobs`` (``0700``), files ``<number>.blobs`` (``0600``, from
creation), numbered upwards; the newest one is appended to. A checkpoint's journal trim starts a
new file and deletes the older files that no journal row refers to any more (a model forgotten,
or a journal trimmed). A summary is written before its row's transaction commits, so a row
never refers to bytes that were not written before it; bytes a failed transaction left behind
are never read and go with their file.

Durability is the store's: neither is synced at each write (the store's WAL runs with
``synchronous=NORMAL``), so both survive the process being killed. A machine that loses power may
keep a row whose summary did not reach the disk; replay then finds the bytes short or their CRC
wrong, and the batch is merged without its summary, counted as a refused summary (its counts,
latency and errors are in the row).

A model forgotten (``raywatch reset --model``, or handed over to another shard) has its rows
deleted, the files no row refers to any more deleted, and its summaries in the files that other
models' rows keep overwritten with zeros (:meth:`BlobFiles.erase`).

Files hold only codec bytes (``RWATCH`` + ``WS``, CRC-checked when read), never a pickle.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

__all__ = ["BlobFiles", "BlobRef"]

log = logging.getLogger("raywatch.aggregate.blobfiles")

BlobRef = Tuple[int, int, int]  # (file number, offset, length)
_NAME = re.compile(r"^(\d{1,18})\.blobs$")
_READERS = 8  # files held open for reading (replay reads one file after another)
_IOV = 512  # buffers a writev takes at most (the limit, IOV_MAX, is 1024 on Linux)


class BlobFiles:
    """The append-only summary files of one store (see the module docstring). Appends come
    from one thread at a time (the store's writer, under its lock); reads may come from any.
    ``read_only``: another store's files (a copy of its database read for a report), never
    written or deleted here."""

    def __init__(self, folder: str, *, read_only: bool = False):
        self.folder = folder
        self.read_only = read_only
        self._lock = threading.RLock()
        self._fd: Optional[int] = None  # the file appended to, opened at the first append
        self._size = 0
        self._readers: Dict[int, int] = {}
        numbers = self.numbers()
        self.current = (max(numbers) + 1) if numbers else 1  # never appends to a file an earlier run wrote

    def path(self, number: int) -> str:
        return os.path.join(self.folder, f"{number:012d}.blobs")

    def numbers(self) -> List[int]:
        """The files in the folder, oldest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)

    # ------------------------------------------------------------------ writes
    def append(self, blobs: Sequence[bytes]) -> List[BlobRef]:
        """Append ``blobs`` to the current file in one ``writev``; where each one is. Raises
        OSError when they could not all be written (what was written is never referred to)."""
        if self.read_only:
            raise OSError(f"{self.folder}: the summary files of another store are read only here")
        with self._lock:
            if self._fd is None:
                self._open_current()
            fd = self._fd
            assert fd is not None
            refs: List[BlobRef] = []
            offset = self._size
            for b in blobs:
                refs.append((self.current, offset, len(b)))
                offset += len(b)
            try:
                _write_all(fd, list(blobs))
            except BaseException:
                self._size = os.fstat(fd).st_size  # a short write: the next append starts after it
                raise
            self._size = offset
            return refs

    def _open_current(self) -> None:
        if not os.path.isdir(self.folder):
            os.makedirs(self.folder, mode=0o700, exist_ok=True)  # 0700 under any umask (it only removes bits)
        if os.stat(self.folder).st_mode & 0o777 != 0o700:
            os.chmod(self.folder, 0o700)
        path = self.path(self.current)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o600)
        if os.fstat(self._fd).st_mode & 0o777 != 0o600:
            os.fchmod(self._fd, 0o600)
        self._size = os.fstat(self._fd).st_size

    def rotate(self) -> None:
        """Start a new file at the next append (the current one can be deleted once no row
        refers to it)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self.current += 1
                self._size = 0

    def drop_unreferenced(self, referenced: Iterable[int]) -> int:
        """Delete the files other than the current one that no journal row refers to; how many."""
        if self.read_only:
            return 0
        keep: Set[int] = set(referenced)
        dropped = 0
        with self._lock:
            for n in self.numbers():
                if n >= self.current or n in keep:
                    continue
                fd = self._readers.pop(n, None)
                if fd is not None:
                    os.close(fd)
                try:
                    os.unlink(self.path(n))
                    dropped += 1
                except FileNotFoundError:
                    pass
        return dropped

    def erase(self, refs: Iterable[BlobRef]) -> int:
        """Overwrite the bytes at ``refs`` with zeros in the files that are still there (a
        model forgotten while other rows keep its files: its summaries do not wait for the
        files' deletion); how many were erased. A file's length never changes."""
        if self.read_only:
            return 0
        by_file: Dict[int, List[Tuple[int, int]]] = {}
        for number, offset, length in refs:
            if length and length > 0:
                by_file.setdefault(int(number), []).append((int(offset), int(length)))
        erased = 0
        with self._lock:
            for number, spans in by_file.items():
                try:
                    fd = os.open(self.path(number), os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))  # not O_APPEND: pwrite in place
                except FileNotFoundError:
                    continue
                try:
                    size = os.fstat(fd).st_size
                    for offset, length in spans:
                        end = min(offset + length, size)
                        while offset < end:
                            offset += os.pwrite(fd, bytes(min(end - offset, 1 << 20)), offset)
                        erased += 1
                finally:
                    os.close(fd)
        return erased

    # ------------------------------------------------------------------ reads
    def read(self, ref: BlobRef) -> Optional[bytes]:
        """The bytes at ``ref``: fewer than its length when the file ends early, None when
        the file is gone (the caller's decode says what is wrong)."""
        number, offset, length = (int(v) for v in ref)
        with self._lock:
            fd = self._readers.get(number)
            if fd is None:
                try:
                    fd = os.open(self.path(number), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except FileNotFoundError:
                    return None
                if len(self._readers) >= _READERS:
                    os.close(self._readers.pop(next(iter(self._readers))))
                self._readers[number] = fd
            return os.pread(fd, length, offset) if length > 0 else b""

    def close(self) -> None:
        with self._lock:
            for fd in list(self._readers.values()) + ([self._fd] if self._fd is not None else []):
                try:
                    os.close(fd)
                except OSError:  # pragma: no cover
                    pass
            self._readers.clear()
            if self._fd is not None:
                self._fd = None
                self.current += 1


def _write_all(fd: int, chunks: List[bytes]) -> None:
    """``os.writev`` until every byte of ``chunks`` is written (a write may be short; at most
    :data:`_IOV` buffers a call, under the system's limit)."""
    views: List = list(chunks)
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i:i + _IOV])
        while i < len(views) and n >= len(views[i]):
            n -= len(views[i])
            i += 1
        if n:
            views[i] = memoryview(views[i])[n:]
