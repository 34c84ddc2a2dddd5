"""Segment labels: a bounded, canonical string for any segment value.

A segment column's values become Prometheus label values, JSON keys and report headings, so
each value is turned into one bounded string by :func:`segment_label`:

* ``None`` and NaN become ``__missing__`` (:data:`MISSING`);
* booleans become ``true``/``false``, integral floats their integer (``3.0`` → ``"3"``),
  numpy scalars their Python value, bytes their UTF-8 text;
* a user value equal to a reserved label (``__other__``, ``__missing__``) gets a leading
  ``_``, so it can never be taken for the shared bucket;
* a label longer than ``max_length`` (default 64) keeps its head and ends with ``~`` and a
  16-hex-digit BLAKE2b digest of the whole value, so distinct long values stay distinct;
* with a ``key`` (a secret from the configuration), the label is ``h:`` followed by a keyed
  BLAKE2b digest: protected attributes can be grouped without their raw values leaving the
  replica. A keyless hash of a low-cardinality attribute could be reversed by trying every
  value; a keyed one cannot without the key. :func:`segment_label` with the same key turns a
  configured group name (a fairness reference group) into the same label.

>>> segment_label(3.0), segment_label(True), segment_label(None), segment_label("__other__")
('3', 'true', '__missing__', '___other__')
>>> len(segment_label("x" * 500)), segment_label("female", key=b"k") == segment_label(b"female", key=b"k")
(64, True)
>>> segment_label("female", key=b"k")[:2]
'h:'

References
----------
Aumasson, J.-P., Neves, S., Wilcox-O'Hearn, Z., Winnerlein, C. (2013). BLAKE2: simpler,
smaller, fast as MD5. ACNS 2013 (keyed mode: a MAC without HMAC's double hashing).
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional, Union

import numpy as np

__all__ = ["segment_label", "digest", "OTHER", "MISSING", "RESERVED", "MAX_LABEL_LENGTH"]

OTHER = "__other__"
MISSING = "__missing__"
RESERVED = frozenset({OTHER, MISSING})
MAX_LABEL_LENGTH = 64


def digest(text: str, key: Optional[bytes] = None) -> bytes:
    """8 bytes of BLAKE2b of ``text`` (keyed when ``key`` is given); stable across processes,
    unlike Python's salted ``hash``."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=key or b"").digest()


def segment_label(value: Any, max_length: int = MAX_LABEL_LENGTH, key: Union[bytes, str, None] = None) -> str:
    """The bounded string label of one segment value (see the module docstring)."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and value != value:
            return MISSING
    if isinstance(value, bool):
        s = "true" if value else "false"
    elif isinstance(value, int):
        s = str(value)
    elif isinstance(value, float):
        s = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, bytes):
        s = value.decode("utf-8", "replace")
    else:
        s = value if isinstance(value, str) else str(value)
        if not s.isascii():
            s = s.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot be labels
    if key is not None:
        return "h:" + digest(s, key.encode("utf-8") if isinstance(key, str) else key).hex()
    if s in RESERVED:
        s = "_" + s
    if len(s) > max_length:
        s = s[: max(max_length - 17, 0)] + "~" + digest(s).hex()
    return s
