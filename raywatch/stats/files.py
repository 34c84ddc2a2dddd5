"""Writing a whole file safely: owner-only from creation, durable, never seen half written.

:func:`atomic_write` is how raywatch replaces a file it owns — a profile, a payload-log part,
a dead-letter file after a replay: the bytes go to a temporary name in the same folder
(created ``0600``), are fsynced, and the temporary file is renamed over the target (a reader
sees the old file or the new one, never a mix); the folder is fsynced so the rename survives
a crash. On any error the temporary file is removed and the error raised.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> p = atomic_write(os.path.join(d, "a.bin"), b"hello")
>>> open(p, "rb").read(), oct(os.stat(p).st_mode & 0o777), os.listdir(d)
(b'hello', '0o600', ['a.bin'])
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Union

__all__ = ["atomic_write", "fsync_dir"]


def atomic_write(path: Union[str, os.PathLike], data: bytes) -> str:
    """Replace ``path`` with ``data`` atomically and durably, owner-only (see the module
    docstring); the folder must exist. Returns the path as a string."""
    path = os.fspath(path)
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(path) or ".")
    return path


def fsync_dir(directory: Union[str, os.PathLike]) -> None:
    """fsync a folder (a rename or a new file in it is durable then); errors are ignored
    (some filesystems cannot)."""
    with contextlib.suppress(OSError):
        fd = os.open(os.fspath(directory), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
