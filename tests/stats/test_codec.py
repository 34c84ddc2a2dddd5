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


def test_unpack_without_copy_shares_the_bytes_read_only():
    blob = pack(b"WS", 1, {}, {"x": np.arange(5.0), "y": np.arange(3, dtype="<i8")})
    _, copied = unpack(blob, b"WS", 1)
    meta, shared = unpack(blob, b"WS", 1, copy=False)
    for name in ("x", "y"):
        np.testing.assert_array_equal(shared[name], copied[name])
        assert copied[name].flags.writeable and not shared[name].flags.writeable
    assert not np.shares_memory(copied["x"], np.frombuffer(blob, dtype=np.uint8))
    assert np.shares_memory(shared["x"], np.frombuffer(blob, dtype=np.uint8))
    _, again = unpack(memoryview(blob), b"WS", 1, copy=False)  # a view of the bytes reads the same
    np.testing.assert_array_equal(again["x"], copied["x"])
    with pytest.raises(FormatError, match="checksum"):
        damaged = bytearray(blob)
        damaged[-1] ^= 1
        unpack(bytes(damaged), b"WS", 1, copy=False)


def test_a_decoded_profile_holds_its_reference_sample_in_the_bytes_it_came_from():
    """The stats actor keeps a model's profile bytes (persistence) and the decoded profile: the
    reference's samples are views of those bytes, so the model holds them once."""
    from raywatch.drift.detect import detect_drift
    from raywatch.stats.profile import Profile

    rng = np.random.default_rng(0)
    data = {"a": rng.normal(size=3000), "b": rng.exponential(size=3000), "c": rng.choice(["x", "y"], 3000)}
    fitted = Profile.fit(data, seed=1)
    blob = fitted.to_bytes()
    decoded = Profile.from_bytes(blob)
    whole = np.frombuffer(blob, dtype=np.uint8)
    owned = sum(v.nbytes + k.nbytes for v, k in decoded.reference.samples if not np.shares_memory(v, whole))
    assert owned == 0 and sum(v.nbytes for v, _ in decoded.reference.samples) > 40_000
    assert decoded.reference == fitted.reference and decoded.to_bytes() == blob
    current = fitted.summarize({"a": rng.normal(0.3, size=500), "b": rng.exponential(size=500),
                                "c": rng.choice(["x", "y"], 500)}, seed=2)
    assert detect_drift(decoded, current).to_dict() == detect_drift(fitted, current).to_dict()
