"""Annotation templates: the subset of Prometheus' alert templating that rules need.

Inside ``{{ ... }}``: ``$value`` (or ``.Value``), ``$labels.NAME`` (or ``.Labels.NAME``),
optionally piped through ``humanize``, ``humanizePercentage``, ``humanizeDuration`` or
``printf "%.2f"``. Because the syntax is Prometheus', exported rule files carry the same
annotations unchanged.

>>> t = Template("{{ $labels.model }}: p95 {{ $value | printf \\"%.3f\\" }}s")
>>> t.render({"model": "fraud"}, 0.51234)
'fraud: p95 0.512s'
>>> Template("{{ $value | humanizePercentage }}").render({}, 0.125)
'12.5%'
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Callable, List, Mapping, Tuple, Union

__all__ = ["Template", "humanize", "humanize_duration", "go_value"]

_EXPR_RE = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_PRINTF_RE = re.compile(r'printf\s+"([^"]*)"')


def humanize(v: float) -> str:
    """Metric prefixes, as Prometheus' ``humanize``.

    >>> humanize(1234567), humanize(0.00025)
    ('1.235M', '250u')
    """
    if v == 0 or math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    a = abs(v)
    if a >= 1:
        for prefix in ("", "k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000 or prefix == "Y":
                return f"{v:.4g}{prefix}"
            v /= 1000.0
    for prefix in ("", "m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1 or prefix == "y":
            return f"{v:.4g}{prefix}"
        v *= 1000.0
    return f"{v:.4g}"  # pragma: no cover


def humanize_duration(v: float) -> str:
    """``90`` -> ``'1m 30s'``, as Prometheus' ``humanizeDuration``."""
    if math.isnan(v) or math.isinf(v):
        return f"{v:.4g}"
    if abs(v) < 1:
        return f"{v * 1000:.4g}ms"
    sign = "-" if v < 0 else ""
    v = abs(v)
    d, rem = divmod(int(v), 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{d}d"] if d else []
    parts += [f"{h}h"] if h else []
    parts += [f"{m}m"] if m else []
    frac = v - int(v)
    parts.append(f"{s}s" if not frac else f"{s + frac:.4g}s")
    return sign + " ".join(parts)


def go_value(v: float) -> str:
    """A float as Go's ``%v`` writes it, which is how Prometheus shows ``{{ $value }}``.

    >>> go_value(0.08), go_value(123456.0), go_value(1234567.0), go_value(0.00001), go_value(float("inf"))
    ('0.08', '123456', '1.234567e+06', '1e-05', '+Inf')
    """
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    d = Decimal(repr(float(v))).normalize()
    sign, digits, exp = d.as_tuple()
    nd = len(digits)
    dp = nd + exp  # position of the decimal point relative to the digits
    x = dp - 1
    text = "".join(map(str, digits))
    neg = "-" if sign else ""
    if x < -4 or x >= 6:  # Go's shortest %g switches to %e at these exponents
        mant = text[0] + ("." + text[1:] if nd > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{text}"
    if dp >= nd:
        return f"{neg}{text}{'0' * (dp - nd)}"
    return f"{neg}{text[:dp]}.{text[dp:]}"


def _pipe(name: str) -> Callable[[object], str]:
    name = name.strip()
    if name == "humanize":
        return lambda x: humanize(float(x))
    if name == "humanizePercentage":
        return lambda x: f"{float(x) * 100:.4g}%"
    if name == "humanizeDuration":
        return lambda x: humanize_duration(float(x))
    m = _PRINTF_RE.fullmatch(name)
    if m:
        fmt = m.group(1)
        try:
            fmt % 1.0
        except (TypeError, ValueError):
            raise ValueError(f"printf format {fmt!r} does not take one number") from None
        return lambda x: fmt % (float(x) if not isinstance(x, str) else x)
    raise ValueError(f"unknown template function {name!r}; expected humanize, humanizePercentage, humanizeDuration or printf \"...\"")


Part = Union[str, Tuple[str, str, List[Callable[[object], str]]]]


class Template:
    """A compiled annotation template; raises ``ValueError`` on unknown syntax."""

    __slots__ = ("source", "_parts")

    def __init__(self, source: str):
        self.source = source
        parts: List[Part] = []
        pos = 0
        for m in _EXPR_RE.finditer(source):
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            pieces = [p for p in m.group(1).split("|")]
            head = pieces[0].strip()
            pipes = [_pipe(p) for p in pieces[1:]]
            if head in ("$value", ".Value"):
                parts.append(("value", "", pipes))
            elif head.startswith("$labels.") or head.startswith(".Labels."):
                label = head.split(".", 2)[-1] if head.startswith(".") else head[len("$labels.") :]
                if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label):
                    raise ValueError(f"bad label name in template: {head!r}")
                parts.append(("label", label, pipes))
            else:
                raise ValueError(f"unknown template expression {{{{ {head} }}}}; expected $value or $labels.NAME")
            pos = m.end()
        if "{{" in source[pos:]:
            raise ValueError(f"unterminated '{{{{' in template {source!r}")
        if pos < len(source):
            parts.append(source[pos:])
        self._parts = parts

    def render(self, labels: Mapping[str, str], value: float) -> str:
        out = []
        for p in self._parts:
            if isinstance(p, str):
                out.append(p)
                continue
            kind, label, pipes = p
            x: object = value if kind == "value" else labels.get(label, "")
            if not pipes:
                if kind == "value":
                    x = go_value(float(value))
                out.append(str(x))
                continue
            for f in pipes:
                x = f(x)
            out.append(str(x))
        return "".join(out)
