"""Signed reference profiles: HMAC-SHA256 over a profile's bytes, with a configured key.

A checksum says the bytes are the ones someone wrote; a signature says *who*: with
``actor.profile_key`` set, the stats actor refuses a profile that is unsigned or whose
signature does not match (the model runs without a reference profile, and says so), so a
replica — or anyone who can call the actor — cannot swap the reference drift is measured
against. The key is a secret (``${ENV}`` reference in YAML); it is never stored.

A signed profile is the profile's codec bytes behind a 40-byte envelope (little-endian)::

    offset  size  field
    0       6     magic b"RWSIGN"
    6       1     envelope version (1)
    7       1     algorithm (1: HMAC-SHA256)
    8       32    HMAC-SHA256(key, b"raywatch.profile\\0" + profile bytes)
    40      ...   the profile's bytes (``Profile.to_bytes()``: b"RWATCH" b"PR" ...)

:func:`strip` returns the profile's bytes without checking (``Profile.from_bytes`` and
``Profile.load`` read signed files that way: verifying is for whoever holds the key);
:func:`verify` checks them in constant time.

>>> from raywatch.stats.profile import Profile
>>> p = Profile.fit({"x": [1.0, 2.0, 3.0, 4.0]}, bins=2, seed=0)
>>> signed = sign(p.to_bytes(), "k3y")
>>> verify(signed, "k3y") == p.to_bytes() and Profile.from_bytes(signed).fingerprint == p.fingerprint
True
>>> verify(p.to_bytes(), "k3y")
Traceback (most recent call last):
...
raywatch.stats.signing.SignatureError: the profile is not signed (a profile_key is configured: sign it with raywatch profile build's key)
>>> verify(signed, "another key")
Traceback (most recent call last):
...
raywatch.stats.signing.SignatureError: the profile's signature does not match the configured profile_key (forged, or signed with another key)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Union

from pydantic import SecretStr

__all__ = ["SignatureError", "sign", "verify", "strip", "is_signed", "MAGIC"]

MAGIC = b"RWSIGN"
VERSION, HMAC_SHA256 = 1, 1
_HEAD = len(MAGIC) + 2
_MAC = 32
_DOMAIN = b"raywatch.profile\0"

Key = Union[str, bytes, SecretStr]


class SignatureError(ValueError):
    """A profile that is unsigned, or whose signature does not match the key."""


def _key(key: Key) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not key:
        raise ValueError("the profile signing key is empty")
    return bytes(key)


def _mac(payload: bytes, key: Key) -> bytes:
    return hmac.new(_key(key), _DOMAIN + payload, hashlib.sha256).digest()


def is_signed(data: bytes) -> bool:
    return bytes(data[: len(MAGIC)]) == MAGIC


def sign(payload: bytes, key: Key) -> bytes:
    """The signed form of a profile's bytes (signing signed bytes signs their payload again)."""
    payload = strip(payload)
    return MAGIC + bytes([VERSION, HMAC_SHA256]) + _mac(payload, key) + payload


def strip(data: bytes) -> bytes:
    """The profile's bytes of signed or unsigned data, unchecked."""
    data = bytes(data)
    if not is_signed(data):
        return data
    if len(data) < _HEAD + _MAC or data[len(MAGIC)] != VERSION or data[len(MAGIC) + 1] != HMAC_SHA256:
        raise SignatureError("the profile's signature envelope is damaged or of an unknown version")
    return data[_HEAD + _MAC:]


def verify(data: bytes, key: Key) -> bytes:
    """The profile's bytes when ``data`` carries a valid signature under ``key``;
    :class:`SignatureError` otherwise (unsigned, damaged, forged or another key)."""
    data = bytes(data)
    if not is_signed(data):
        raise SignatureError("the profile is not signed (a profile_key is configured: sign it with raywatch "
                             "profile build's key)")
    payload = strip(data)
    if not hmac.compare_digest(data[_HEAD:_HEAD + _MAC], _mac(payload, key)):
        raise SignatureError("the profile's signature does not match the configured profile_key (forged, or "
                             "signed with another key)")
    return payload
