"""Numbers written so that they read back exactly.

A threshold written into a rule file, a query or a message must parse back into the very
same float: ``f"{x:g}"`` keeps six significant digits (``1234567`` becomes ``1.23457e+06``,
which is 1234570). :func:`number_text` writes the shortest text that round-trips (Python's
``repr``), whole numbers without a trailing ``.0``; :func:`decimal_text` writes the same
value without an exponent, for targets whose grammar has none.

>>> number_text(1234567.0), number_text(0.1234567), number_text(1e-9), number_text(0.5)
('1234567', '0.1234567', '1e-09', '0.5')
>>> decimal_text(1e-9), decimal_text(1234567.0), decimal_text(-2.5e20)
('0.000000001', '1234567', '-250000000000000000000')
>>> all(float(number_text(x)) == x == float(decimal_text(x)) for x in (1234567, 0.1234567, 1e-9, 2 ** 60, -3.0))
True
"""

from __future__ import annotations

import math
from decimal import Decimal

__all__ = ["number_text", "decimal_text"]


def number_text(x: float) -> str:
    """The shortest text that reads back as ``x`` (``Inf``, ``-Inf``, ``NaN`` as PromQL spells them)."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def decimal_text(x: float) -> str:
    """``x`` in positional notation (no exponent) that reads back as ``x``; ValueError for
    infinities and NaN, which have no such notation."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{x!r} has no decimal notation")
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
