"""The README's fenced code blocks and the mark before each that says how the tests exercise it.

Every fenced block of ``README.md`` is preceded by an HTML comment (invisible on GitHub)::

    <!-- test: KIND [FLAG ...] [key=value | key="a value"] -->

=========  ==========================================================================================
KIND       what the tests do with the block (``tests/readme``)
=========  ==========================================================================================
python     executed. ``file=NAME``: written to NAME for later blocks (the tutorial's modules);
           ``tutorial``: run as a script against the tutorial's real Ray cluster
           (:mod:`test_tutorial`); else executed here, without Ray. Lines ``# → TEXT`` are what
           the ``print`` calls before them must print. ``covered-by=PATH``: needs a cluster
           or data this test has not; the named test runs the block's text.
shell      run with bash. ``tutorial``: in the tutorial, in order (``until="TEXT"``: again until
           the output holds TEXT); ``covered-by=PATH[,PATH]``: not run here because the named
           test files (or CI) run it, and they must exist; else run here (cheap commands).
yaml       loaded with raywatch's loaders: ``monitor`` (a raywatch YAML, ``load_config``) or
           ``serve`` (a serve config, ``load_serve_config``; ``excerpt-of=PATH``: and its
           application is part of that file's).
output     what a command prints: ``of="CMD"`` (run here, the same text), ``of-tutorial="CMD"``
           (the tutorial's run of CMD, numbers aside), or ``sample covered-by=PATH``.
figure     a text picture (``text`` blocks only): nothing to run.
=========  ==========================================================================================

A block without a mark, or with a mark this table does not allow, fails
``test_every_block_has_a_mark`` — so a new example cannot slip in untested.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

KINDS: Dict[str, Dict[str, Set[str]]] = {
    # kind: {"langs": fences allowed, "flags": bare words allowed, "keys": key=value allowed}
    "python": {"langs": {"python"}, "flags": {"tutorial"}, "keys": {"file", "covered-by"}},
    "shell": {"langs": {"bash"}, "flags": {"tutorial"}, "keys": {"until", "covered-by"}},
    "yaml": {"langs": {"yaml"}, "flags": {"monitor", "serve"}, "keys": {"excerpt-of"}},
    "output": {"langs": {"text"}, "flags": {"sample"}, "keys": {"of", "of-tutorial", "covered-by"}},
    "figure": {"langs": {"text"}, "flags": set(), "keys": set()},
}
MARK_RE = re.compile(r"^<!--\s*test:\s*(.*?)\s*-->\s*$")
EXPECT_PREFIX = "# → "


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    kind: str = ""
    flags: Set[str] = field(default_factory=set)
    opts: Dict[str, str] = field(default_factory=dict)
    problem: str = ""  # why the mark is missing or wrong ("" when it is fine)

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang} block, {self.kind or 'unmarked'})"

    def expected_prints(self) -> List[str]:
        """The ``# → TEXT`` lines: what the block prints, in order."""
        return [ln.strip()[len(EXPECT_PREFIX):] for ln in self.text.splitlines() if ln.strip().startswith(EXPECT_PREFIX)]


def parse_mark(text: str) -> tuple:
    words = shlex.split(text)
    if not words:
        raise ValueError("empty mark")
    kind, flags, opts = words[0], set(), {}
    for w in words[1:]:
        if "=" in w:
            k, _, v = w.partition("=")
            opts[k] = v
        else:
            flags.add(w)
    return kind, flags, opts


def check_mark(b: Block) -> str:
    spec = KINDS.get(b.kind)
    if spec is None:
        return f"unknown kind {b.kind!r} (one of {', '.join(sorted(KINDS))})"
    if b.lang not in spec["langs"]:
        return f"a {b.kind} mark on a {b.lang or 'plain'} block (expected {', '.join(sorted(spec['langs']))})"
    bad = sorted(b.flags - spec["flags"]) + sorted(set(b.opts) - spec["keys"])
    if bad:
        return f"{b.kind} does not take {', '.join(bad)}"
    if b.kind == "yaml" and len(b.flags & {"monitor", "serve"}) != 1:
        return "a yaml mark says which loader: monitor or serve"
    if b.kind == "output" and not ({"of", "of-tutorial"} & set(b.opts) or ("sample" in b.flags and "covered-by" in b.opts)):
        return "an output mark says of which command (of=, of-tutorial=) or is a sample covered-by= a test"
    if b.kind == "python" and "file" in b.opts and "tutorial" in b.flags:
        return "a python block is either a file (file=) or run (tutorial)"
    return ""


def blocks(text: str) -> List[Block]:
    """Every fenced block of ``text`` (the README), with its mark parsed and checked."""
    lines = text.split("\n")
    out: List[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(```+|~~~+)\s*([\w-]*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2)
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        b = Block(line=i + 1, lang=lang, text="\n".join(lines[i + 1 : j]) + "\n")
        prev = lines[i - 1] if i > 0 else ""
        mark = MARK_RE.match(prev)
        if not mark:
            b.problem = "no <!-- test: ... --> mark on the line before it"
        else:
            try:
                b.kind, b.flags, b.opts = parse_mark(mark.group(1))
                b.problem = check_mark(b)
            except ValueError as exc:
                b.problem = f"unreadable mark: {exc}"
        out.append(b)
        i = j + 1
    return out


def readme_blocks() -> List[Block]:
    return blocks(README.read_text())


def of_kind(kind: str, *flags: str, without: tuple = ()) -> List[Block]:
    return [b for b in readme_blocks() if b.kind == kind and set(flags) <= b.flags | set(b.opts)
            and not set(without) & (b.flags | set(b.opts))]


def number_pattern(line: str) -> str:
    """A regex for an output line whose figures may differ: each number (with its unit) matches
    any number (with any unit).

    >>> bool(re.fullmatch(number_pattern("p50 1.63 ms  rss 290 MiB  p_adj=4.6e-79"), "p50 812 µs  rss 1.2 GiB  p_adj=1"))
    True
    """
    num = r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
    unit = r"(?: ?(?:µs|ms|s|B|KiB|MiB|GiB|k|M|G|%))?"
    parts = re.split(num + unit, line)
    return (num + unit).join(re.escape(p) for p in parts).replace(re.escape(" "), " ")
