"""Label matchers and series selectors, with Prometheus/Alertmanager syntax.

A matcher is ``label op "value"`` with ``op`` one of ``=``, ``!=``, ``=~`` and ``!~``.
Regular expressions are anchored at both ends, as in Prometheus: ``model=~"fraud"``
matches ``fraud`` but not ``fraud-v2``. A missing label reads as the empty string, so
``team=""`` selects series without a ``team`` label.

>>> m = Matcher.parse('feature=~"age|income"')
>>> m.matches({"feature": "age"}), m.matches({"feature": "agency"})
(True, False)
>>> sel = Selector.parse('latency_p95_seconds{model="fraud", version!="v1"}')
>>> sel.name, [str(x) for x in sel.matchers]
('latency_p95_seconds', ['model="fraud"', 'version!="v1"'])
>>> parse_condition('error_rate{model="fraud"} > 0.05')
(Selector('error_rate{model="fraud"}'), '>', 0.05)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["Matcher", "Selector", "parse_matchers", "parse_condition", "matches_all", "labels_dict", "OPS", "COMPARISONS"]

OPS = ("=", "!=", "=~", "!~")
COMPARISONS = (">", ">=", "<", "<=", "==", "!=")

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_MATCHER_RE = re.compile(
    r"\s*(" + _LABEL + r")\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^,}\"'\s]*)\s*"
)
_COND_RE = re.compile(
    r"^\s*(" + _NAME + r")\s*(\{.*\})?\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$",
    re.S,
)


_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}


def _unquote(raw: str) -> str:
    r"""Strip quotes and undo ``\\``, ``\"``, ``\n``, ``\t``; other backslashes are kept, so a
    regular expression such as ``"x\.y"`` means what it looks like."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        body, out, i = raw[1:-1], [], 0
        while i < len(body):
            ch = body[i]
            if ch == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)
    return raw


@dataclass(frozen=True)
class Matcher:
    """One label matcher; ``matches(labels)`` tests a label mapping."""

    label: str
    op: str
    value: str
    _regex: Optional["re.Pattern[str]"] = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"unknown matcher operator {self.op!r}; expected one of {', '.join(OPS)}")
        if not re.fullmatch(_LABEL, self.label):
            raise ValueError(f"bad label name {self.label!r}")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(r"(?:" + self.value + r")\Z", re.S))
            except re.error as exc:
                raise ValueError(f"bad regular expression {self.value!r}: {exc}") from None

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        """Parse ``label op "value"`` (quotes optional for simple values)."""
        m = _MATCHER_RE.fullmatch(text)
        if not m:
            raise ValueError(f"expected a matcher such as 'severity=\"critical\"' or 'model=~\"fraud.*\"', got {text!r}")
        return cls(m.group(1), m.group(2), _unquote(m.group(3)))

    def match_value(self, value: str) -> bool:
        """Whether one label value (``""`` when absent) satisfies this matcher."""
        if not isinstance(value, str):
            value = str(value)
        op = self.op
        if op == "=":
            return value == self.value
        if op == "!=":
            return value != self.value
        hit = self._regex.match(value) is not None
        return hit if op == "=~" else not hit

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.match_value(labels.get(self.label, ""))

    def __str__(self) -> str:
        return f"{self.label}{self.op}{json.dumps(self.value)}"


def _split_matchers(body: str) -> List[str]:
    parts, cur, quote, esc = [], [], None, False
    for ch in body:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\" and quote:
            cur.append(ch)
            esc = True
        elif quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            cur.append(ch)
            quote = ch
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quote:
        raise ValueError(f"unterminated quote in {{{body}}}")
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def parse_matchers(items: Iterable[str] | str) -> Tuple[Matcher, ...]:
    """Matchers from a list of strings, or from one ``{a="b", c=~"d"}`` string.

    >>> [str(m) for m in parse_matchers('{severity="critical", model=~"f.*"}')]
    ['severity="critical"', 'model=~"f.*"']
    """
    if isinstance(items, str):
        text = items.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1]
        items = _split_matchers(text)
    return tuple(Matcher.parse(s) for s in items)


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every matcher (an empty list matches everything)."""
    for m in matchers:
        if not m.matches(labels):
            return False
    return True


@dataclass(frozen=True)
class Selector:
    """A metric name with label matchers: ``name{label op "value", ...}``."""

    name: str
    matchers: Tuple[Matcher, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Selector":
        text = text.strip()
        m = re.fullmatch(r"(" + _NAME + r")\s*(\{.*\})?", text, re.S)
        if not m:
            raise ValueError(f"expected a series selector such as 'drift_score{{feature=~\".*\"}}', got {text!r}")
        return cls(m.group(1), parse_matchers(m.group(2)) if m.group(2) else ())

    @property
    def label_names(self) -> Tuple[str, ...]:
        """The labels the matchers read, in order."""
        return tuple(m.label for m in self.matchers)

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return name == self.name and matches_all(self.matchers, labels)

    def __str__(self) -> str:
        if not self.matchers:
            return self.name
        return self.name + "{" + ", ".join(str(m) for m in self.matchers) + "}"

    def __repr__(self) -> str:
        return f"Selector({str(self)!r})"


def parse_condition(text: str) -> Tuple[Selector, str, float]:
    """``selector op number`` -> (Selector, op, threshold)."""
    m = _COND_RE.match(text)
    if not m:
        raise ValueError(
            "expected 'metric{label=\"value\"} OP number' with OP one of > >= < <= == !=, "
            f"e.g. 'latency_p95_seconds > 0.5', got {text!r}"
        )
    sel = Selector(m.group(1), parse_matchers(m.group(2)) if m.group(2) else ())
    return sel, m.group(3), float(m.group(4))


def labels_dict(matchers: Sequence[Matcher]) -> Dict[str, str]:
    """Equality matchers as a plain mapping."""
    return {m.label: m.value for m in matchers if m.op == "="}
