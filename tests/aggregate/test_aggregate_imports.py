"""The aggregation core stays pure: it never imports ray, the alerting package or the shell,
and its modules import at module level only (a ``TYPE_CHECKING`` block aside). Checked on the
source (every import statement) and in a fresh interpreter (what importing it pulls in)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import raywatch.aggregate

ROOT = Path(raywatch.aggregate.__file__).parent
MODULES = sorted(f"raywatch.aggregate.{m.name}" for m in pkgutil.iter_modules([str(ROOT)]))
FORBIDDEN = ("ray", "raywatch.alerts", "raywatch.sinks", "raywatch.export", "raywatch.report", "raywatch.actor",
             "raywatch.serve", "raywatch.cli")


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node, node.module or ""


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_no_import_of_ray_alerts_or_the_shell_in_the_source():
    bad = []
    for path in sorted(ROOT.glob("*.py")):
        for node, name in _imports(ast.parse(path.read_text())):
            if _forbidden(name):
                bad.append(f"{path.name}:{node.lineno} imports {name}")
    assert bad == []


def test_imports_are_at_module_level():
    inner = []
    for path in sorted(ROOT.glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner += [f"{path.name}:{n.lineno}" for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert inner == []


def test_importing_every_module_pulls_in_neither_ray_nor_alerting():
    code = "import sys\n" + "\n".join(f"import {m}" for m in MODULES) + (
        "\nprint(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'raywatch.alerts', 'raywatch.actor'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(MODULES) >= 15 and out.stdout.strip() == "[]"


def test_the_source_check_can_fail():
    tree = ast.parse("import ray\nfrom raywatch.alerts.engine import AlertEngine\nfrom raywatch.series import Series\n")
    assert [name for _, name in _imports(tree) if _forbidden(name)] == ["ray", "raywatch.alerts.engine"]
