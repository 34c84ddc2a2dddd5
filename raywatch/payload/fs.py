"""Where the payload log lives: a local folder (owner-only) or a filesystem URI.

:func:`open_filesystem` turns a path or URI and its options into a pyarrow filesystem and
the root path on it. Local folders are created ``0700`` and every file ``0600`` from
creation (:func:`write_file`); object stores have no file modes (use the bucket's policy).
pyarrow is imported here, lazily, with an error that names the extra to install.

>>> import tempfile, os
>>> root = os.path.join(tempfile.mkdtemp(), "log")
>>> fs, path = open_filesystem(root)
>>> write_file(fs, path + "/a/b.bin", b"xy", local=True)
>>> oct(os.stat(root + "/a/b.bin").st_mode & 0o777), oct(os.stat(root + "/a").st_mode & 0o777)
('0o600', '0o700')
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from raywatch.stats.files import atomic_write

__all__ = ["require_pyarrow", "open_filesystem", "write_file", "list_files", "FileEntry", "is_local", "makedirs_owner_only"]


def require_pyarrow() -> Any:
    """The ``pyarrow`` module, or an ImportError saying how to get it."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.fs  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:  # pragma: no cover - pyarrow is installed for the tests
        raise ImportError("raywatch's payload log needs pyarrow: pip install 'raywatch[log]' "
                          f"({type(exc).__name__}: {exc})") from None
    return pyarrow


def makedirs_owner_only(path: str) -> None:
    """Create ``path`` and every missing folder above it ``0700`` (``os.makedirs`` gives the
    intermediate ones the umask's mode)."""
    missing = []
    p = os.path.abspath(path)
    while p and not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)  # whatever the umask says


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def open_filesystem(uri: str, options: Optional[Mapping[str, Any]] = None, *,
                    access_key: Optional[str] = None, secret_key: Optional[str] = None) -> Tuple[Any, str]:
    """``(filesystem, root)`` for a local path or URI. For ``s3://`` with ``options``
    (``endpoint_override``, ``region``, ``scheme``, …) or keys, an ``S3FileSystem`` is built
    from them; any other URI goes to ``pyarrow.fs.FileSystem.from_uri``."""
    require_pyarrow()
    from pyarrow import fs as pafs

    if is_local(uri):
        path = os.path.abspath(os.path.expanduser(uri[len("file://"):] if uri.startswith("file://") else uri))
        makedirs_owner_only(path)
        return pafs.LocalFileSystem(), path
    opts: Dict[str, Any] = dict(options or {})
    if uri.startswith("s3://") and (opts or access_key or secret_key):
        if access_key:
            opts["access_key"] = access_key
        if secret_key:
            opts["secret_key"] = secret_key
        return pafs.S3FileSystem(**opts), uri[len("s3://"):].rstrip("/")
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path.rstrip("/")


def write_file(fs: Any, path: str, data: bytes, *, local: bool) -> None:
    """Write ``data`` to ``path`` whole: a local file owner-only from creation, written to a
    temporary name and renamed (a reader never sees half a file); on an object store, one put."""
    if local:
        makedirs_owner_only(os.path.dirname(path))
        atomic_write(path, data)
        return
    with fs.open_output_stream(path) as out:
        out.write(data)


class FileEntry(NamedTuple):
    path: str
    size: int
    mtime: Optional[float]


def list_files(fs: Any, root: str, suffix: str = ".parquet") -> List[FileEntry]:
    """Every file under ``root`` ending in ``suffix`` (none when ``root`` does not exist)."""
    from pyarrow import fs as pafs

    sel = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    out = []
    for info in fs.get_file_info(sel):
        if info.type == pafs.FileType.File and info.path.endswith(suffix):
            mt = info.mtime
            out.append(FileEntry(info.path, int(info.size or 0), mt.timestamp() if mt is not None else None))
    return out
