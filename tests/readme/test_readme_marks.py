"""Every fenced block of the README says how the tests exercise it (see ``readme_blocks``), and
what it points to exists."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from readme_blocks import KINDS, ROOT, blocks, readme_blocks  # noqa: E402


def test_every_block_has_a_mark():
    bad = [f"{b.where}: {b.problem}" for b in readme_blocks() if b.problem]
    assert bad == []


def test_the_mark_check_catches_an_unmarked_or_wrong_block():
    """The negative control: a block without a mark, a mark on the wrong language, a mark
    of an unknown kind and a yaml mark without its loader are each caught."""
    text = "\n".join([
        "```python", "print(1)", "```",
        "<!-- test: shell -->", "```python", "print(2)", "```",
        "<!-- test: typo -->", "```bash", "ls", "```",
        "<!-- test: yaml -->", "```yaml", "a: 1", "```",
        "<!-- test: python -->", "```python", "print(3)", "```",
    ])
    problems = [b.problem for b in blocks(text)]
    assert problems[0].startswith("no <!-- test")
    assert problems[1].startswith("a shell mark on a python block")
    assert problems[2].startswith("unknown kind 'typo'")
    assert problems[3].startswith("a yaml mark says which loader")
    assert problems[4] == ""


def test_every_kind_is_used_and_the_tutorial_is_there():
    used = {b.kind for b in readme_blocks()}
    assert used == set(KINDS)
    tutorial = [b for b in readme_blocks() if "tutorial" in b.flags]
    assert len(tutorial) >= 5
    files = {b.opts["file"] for b in readme_blocks() if "file" in b.opts}
    assert files == {"fraud_app.py", "make_profile.py"}


def test_covered_blocks_name_tests_that_exist_and_run_them():
    """A block left to another test names it, and that test runs the block's commands: the
    demo and the test command itself are run by tests/cli/test_demo.py and by CI (.ci/run);
    `raywatch reset` by tests/cli/test_cli_ray.py."""
    covered = [b for b in readme_blocks() if "covered-by" in b.opts]
    assert covered
    for b in covered:
        for path in b.opts["covered-by"].split(","):
            target = ROOT / path
            assert target.exists(), f"{b.where}: {path} does not exist"
            text = target.read_text()
            if b.kind == "python":  # the covering test runs the block's text, read from the README
                assert "README.md" in text, (b.where, path)
            if b.kind == "shell":
                for line in b.text.splitlines():
                    cmd = line.split("#")[0].strip()
                    for part in filter(None, (p.strip() for p in cmd.split("&&"))):
                        words = part.split()
                        if words[0] == "raywatch":
                            assert words[1] in text or path == ".ci/run", (b.where, path, part)
                        elif path == ".ci/run":
                            assert part in text or "pip install" in part, (b.where, part)


@pytest.mark.parametrize("b", [b for b in readme_blocks() if b.kind == "output" and "sample" in b.flags], ids=lambda b: b.where)
def test_sample_output_is_checked_by_its_covering_test(b):
    """The demo's sample output has the lines tests/cli/test_demo.py looks for in a real run;
    other samples are read from the README by their covering test."""
    if b.opts["covered-by"] == "tests/cli/test_demo.py":
        for needle in ("DATA DRIFT injected: amount ×3, distance_km ×5", "injecting DATA DRIFT", "LATENCY REGRESSION",
                       "amount=DRIFT", "ALERT FIRING   FeatureDrift [warning] feature=amount", "LatencyRegression [critical]"):
            assert needle in b.text, needle
    else:
        assert "README.md" in (ROOT / b.opts["covered-by"]).read_text()
