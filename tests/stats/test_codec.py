import json
import struct
import zlib

import numpy as np
import pytest

from raywatch.stats.codec import FormatError, pack, unpack


def _reframe(header: bytes, payload: bytes = b"") -> bytes:
    body = header + payload
    return struct.pack("<6s2sHIII", b"RWATCH", b"WS", 1, len(header), len(payload), zlib.crc32(body)) + body


def test_round_trip_of_every_supported_dtype():
    arrays = {
        "i8": np.array([-1, 2**40], dtype="<i8"),
        "u4": np.array([0, 2**32 - 1], dtype="<u4"),
        "f8": np.array([0.5, np.inf], dtype="<f8"),
        "f4": np.array([1.5], dtype="<f4"),
        "u1": np.frombuffer(b"abc", dtype=np.uint8),
        "big_endian": np.array([7], dtype=">i8"),
    }
    meta, out = unpack(pack(b"WS", 1, {"a": [1, "x"]}, arrays), b"WS", 1)
    assert meta == {"a": [1, "x"]}
    for name, arr in arrays.items():
        np.testing.assert_array_equal(out[name], arr)


def test_pack_refuses_objects():
    with pytest.raises(TypeError, match="unsupported dtype"):
        pack(b"WS", 1, {}, {"o": np.array([object()], dtype=object)})


def test_unreadable_header_and_array_table():
    with pytest.raises(FormatError, match="unreadable header"):
        unpack(_reframe(b"{not json"), b"WS", 1)
    header = json.dumps({"meta": {}, "arrays": [["x", "<f8", 4]]}).encode()
    with pytest.raises(FormatError, match="runs past the end"):
        unpack(_reframe(header, b"\0" * 8), b"WS", 1)
    header = json.dumps({"meta": {}, "arrays": [["x", "|O", 1]]}).encode()
    with pytest.raises(FormatError, match="unsupported dtype"):
        unpack(_reframe(header, b"\0" * 8), b"WS", 1)
    with pytest.raises(FormatError, match="trailing bytes"):
        unpack(pack(b"WS", 1, {}, {}) + b"x", b"WS", 1)


def test_a_reader_of_several_versions_reads_each_and_names_them():
    from raywatch.stats.codec import version_of

    for v in (1, 2):
        blob = pack(b"WS", v, {"v": v}, {})
        assert version_of(blob) == v and unpack(blob, b"WS", (1, 2))[0] == {"v": v}
    with pytest.raises(FormatError, match="version 3 is not supported \\(this raywatch reads versions 1, 2\\)"):
        unpack(pack(b"WS", 3, {}, {}), b"WS", (1, 2))
    assert version_of(b"not raywatch") == 0
