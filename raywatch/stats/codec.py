"""A small, safe binary container: a fixed header, a JSON header and raw numpy arrays.

Profiles and window summaries travel between processes and live in files. They are
encoded here rather than pickled, so that loading one never runs code and a damaged or
foreign file is recognized and named. Layout (all integers little-endian)::

    offset  size  field
    0       6     magic b"RWATCH"
    6       2     kind: b"PR" (profile) or b"WS" (window summary)
    8       2     format version (uint16)
    10      4     length of the JSON header in bytes (uint32)
    14      4     length of the array payload in bytes (uint32)
    18      4     CRC-32 of everything after these 22 bytes (uint32)
    22      ...   JSON header (UTF-8), then the arrays back to back

The JSON header lists the arrays as ``[name, dtype, length]``; only a fixed set of
little-endian numeric dtypes is accepted. A reader names the format versions it reads
(``unpack(data, kind, (1, 2))``): a format that gains optional parts bumps its version and
keeps reading the old one.

>>> import numpy as np
>>> blob = pack(b"WS", 1, {"rows": 3}, {"x": np.arange(3, dtype="<i8")})
>>> meta, arrays = unpack(blob, b"WS", 1)
>>> meta["rows"], arrays["x"].tolist()
(3, [0, 1, 2])
>>> unpack(blob[:-1], b"WS", 1)
Traceback (most recent call last):
...
raywatch.stats.codec.FormatError: truncated window summary: expected 90 bytes, got 89
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import numpy as np

__all__ = ["FormatError", "pack", "unpack", "version_of", "KIND_NAMES"]

MAGIC = b"RWATCH"
_HEAD = struct.Struct("<6s2sHIII")
KIND_NAMES = {b"PR": "profile", b"WS": "window summary"}
_DTYPES = {"<i8", "<u4", "<u2", "<u1", "<f8", "<f4", "|u1", "|i1"}
_DTYPE_OF = {name: np.dtype(name) for name in _DTYPES}


class FormatError(ValueError):
    """Bytes or a file that are not a readable raywatch profile or summary."""


def version_of(data: bytes) -> int:
    """The format version written in the header of raywatch bytes (0 when there is no header)."""
    if len(data) < _HEAD.size or bytes(data[:6]) != MAGIC:
        return 0
    return int(_HEAD.unpack_from(bytes(data[: _HEAD.size]))[2])


def pack(kind: bytes, version: int, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """Encode ``meta`` (JSON-able) and 1-D numeric ``arrays`` into bytes."""
    specs = []
    chunks = []
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.ndim != 1:
            a = a.reshape(-1)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "<", "=") else a.dtype
        a = a.astype(dt, copy=False)
        if a.dtype.str not in _DTYPES:
            raise TypeError(f"array {name!r} has unsupported dtype {a.dtype.str}")
        specs.append([name, a.dtype.str, int(a.size)])
        chunks.append(a.tobytes())
    header = json.dumps({"meta": dict(meta), "arrays": specs}, separators=(",", ":"), allow_nan=True).encode()
    payload = b"".join(chunks)
    body = header + payload
    head = _HEAD.pack(MAGIC, kind, version, len(header), len(payload), zlib.crc32(body) & 0xFFFFFFFF)
    return head + body


def unpack(
    data: bytes, kind: bytes, version: Union[int, Sequence[int]], source: str = "", *, copy: bool = True
) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Decode bytes made by :func:`pack`; raise :class:`FormatError` saying what is wrong.

    ``version`` is the format version this reader reads, or a sequence of them; the version
    found is :func:`version_of` the bytes. ``copy=False`` returns read-only arrays that share
    ``data``'s memory (they keep it alive): a reference profile held beside its bytes costs
    its bytes once.
    """
    versions = (int(version),) if isinstance(version, (int, np.integer)) else tuple(int(v) for v in version)
    what = KIND_NAMES.get(kind, "raywatch data")
    where = f"{source}: " if source else ""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"{where}expected bytes for a {what}, got {type(data).__name__}")
    if not isinstance(data, bytes) and (copy or not isinstance(data, memoryview)):
        data = bytes(data)
    view = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
    if len(view) < _HEAD.size or bytes(view[:6]) != MAGIC:
        raise FormatError(f"{where}not a raywatch {what} (the file does not start with the raywatch magic bytes)")
    magic, got_kind, got_version, hlen, plen, crc = _HEAD.unpack_from(view)
    if got_kind != kind:
        raise FormatError(
            f"{where}this is a raywatch {KIND_NAMES.get(got_kind, repr(got_kind))}, not a {what}"
        )
    if got_version not in versions:
        reads = f"version {versions[0]}" if len(versions) == 1 else "versions " + ", ".join(map(str, versions))
        raise FormatError(f"{where}{what} format version {got_version} is not supported (this raywatch reads {reads})")
    expected = _HEAD.size + hlen + plen
    if len(view) != expected:
        state = "truncated" if len(view) < expected else "damaged (trailing bytes after the end of the data)"
        raise FormatError(f"{where}{state} {what}: expected {expected} bytes, got {len(view)}")
    body = view[_HEAD.size :]
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise FormatError(f"{where}damaged {what}: checksum mismatch")
    try:
        header = json.loads(bytes(body[:hlen]).decode())
        meta, specs = header["meta"], header["arrays"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise FormatError(f"{where}damaged {what}: unreadable header") from None
    arrays: Dict[str, np.ndarray] = {}
    pos = hlen
    try:
        for name, dtype, length in specs:
            dt = _DTYPE_OF.get(dtype) if type(dtype) is str else None
            if dt is None:
                raise FormatError(f"{where}damaged {what}: array {name!r} has unsupported dtype {dtype!r}")
            nbytes = dt.itemsize * int(length)
            if pos + nbytes > len(body):
                raise FormatError(f"{where}damaged {what}: array {name!r} runs past the end of the data")
            arr = np.frombuffer(body, dtype=dt, count=int(length), offset=pos)
            arrays[name] = arr.copy() if copy else arr
            pos += nbytes
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"{where}damaged {what}: bad array table") from None
    return meta, arrays
