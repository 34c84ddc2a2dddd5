"""The layer rule of DESIGN.md, checked on the source of every module in raywatch/.

* Ranks: a module may import (at module level or inside a function, ``import raywatch.x``
  or ``from raywatch.x import y``, or ``importlib.import_module("raywatch.x")``) only
  modules of its own package or of a package of a lower rank (:data:`RANKS`). The
  arrows between packages of the same rank are declared in :data:`SAME_RANK`.
* No import cycles between modules (function-level imports count).
* The Ray-free packages never import ray: not in their source (function level included),
  and not when every one of their modules is imported in a fresh interpreter.

Each check has a negative control showing that it can fail. Packages another change is
still creating are covered as soon as they exist.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1] / "raywatch"

RANKS: Dict[str, int] = {
    "raywatch._lazy": -1,   # lazy re-exports: imports nothing but importlib, used by package __init__s
    "raywatch": 0,          # the package's own __init__ (lazy public names, __version__)
    "raywatch.expr": 0,     # rule expressions: matchers, selectors, templates, exact numbers
    "raywatch.series": 0,   # the metric catalogue
    "raywatch.config": 1,   # the schema: declarations only
    "raywatch.stats": 2,    # profiles, summaries, sketches, replica batches
    "raywatch.payload": 2,  # the payload log (Parquet) and the labelled dataset
    "raywatch.drift": 3,    # drift tests, quality, streaming detectors, performance
    "raywatch.aggregate": 4,  # the stats actor's logic without Ray
    "raywatch.sinks": 4,    # one module per destination + the notification it receives
    "raywatch.alerts": 5,   # rules, lifecycle, routing, delivery, dead letters
    "raywatch.remediate": 5,  # remediation decisions: policy, gate, state machine, audit record
    "raywatch.export": 6,   # files for other tools
    "raywatch.report": 7,   # the offline HTML report
    "raywatch.serve": 8,    # the Ray shell: replicas
    "raywatch.actor": 8,    # the Ray shell: the stats actor
    "raywatch.remediate.shell": 8,  # the Ray shell: remediation controller, retrain tasks, rollout on Serve
    "raywatch.offline": 8,  # the Ray shell: files and batch jobs on Ray Data
    "raywatch.cli": 9,      # the raywatch command
}
SAME_RANK: Set[Tuple[str, str]] = {
    ("raywatch.serve", "raywatch.actor"),  # replicas ship to, and find, the stats actor
    ("raywatch.remediate.shell", "raywatch.serve"),  # the rollout goes through Serve's internals (serve.compat)
    ("raywatch.actor", "raywatch.remediate.shell"),  # the stats actor registers remediating models with the controller
    ("raywatch.offline", "raywatch.serve"),  # batch jobs ship as replicas do (serve.shipper)
    ("raywatch.payload", "raywatch.stats"),  # the log's parts are written as profiles are (stats.files)
}
RAY_FREE = ("raywatch.expr", "raywatch.series", "raywatch.config", "raywatch.stats", "raywatch.drift",
            "raywatch.aggregate", "raywatch.sinks", "raywatch.alerts", "raywatch.export", "raywatch.report",
            "raywatch.payload", "raywatch.remediate")


# --------------------------------------------------------------------------- reading the source


def modules(root: Path) -> Dict[str, Path]:
    """Every module under ``root`` (a ``raywatch`` directory) by dotted name."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _lazy_table(tree: ast.Module) -> Dict[str, str]:
    """A package ``__init__``'s ``_EXPORTS = {"name": "module:attr"}`` table."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            try:
                table = ast.literal_eval(node.value)
            except ValueError:
                return {}
            if isinstance(table, dict) and all(isinstance(v, str) and ":" in v for v in table.values()):
                return {k: v.split(":")[0] for k, v in table.items()}
    return {}


def _is_function_local(node: ast.AST, parents: Dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def _is_type_checking_only(node: ast.AST, parents: Dict[ast.AST, ast.AST]) -> bool:
    """Inside ``if TYPE_CHECKING:`` (never executed: an annotation's import, not an edge)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and (getattr(node.test, "id", None) == "TYPE_CHECKING"
                                         or getattr(node.test, "attr", None) == "TYPE_CHECKING"):
            return True
    return False


def imports(name: str, path: Path, known: Dict[str, Path], lazy: Dict[str, Dict[str, str]]) -> Iterator[Tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in ``path`` that can run
    (imports under ``if TYPE_CHECKING:`` are annotations' only), resolved to the most specific
    module that exists (``from raywatch.alerts import AlertEngine`` through the package's lazy
    table to ``raywatch.alerts.engine``); third-party modules too."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and _is_type_checking_only(node, parents):
            continue
        local = _is_function_local(node, parents)
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, local
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    yield full, node.lineno, local
                elif alias.name in lazy.get(base, {}):
                    yield lazy[base][alias.name], node.lineno, local
                else:
                    yield base, node.lineno, local
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value, node.lineno, local


def import_graph(root: Path) -> Dict[str, List[Tuple[str, int, bool]]]:
    """Each module's imports (see :func:`imports`)."""
    known = modules(root)
    lazy = {name: _lazy_table(ast.parse(p.read_text())) for name, p in known.items() if p.name == "__init__.py"}
    return {name: list(imports(name, path, known, lazy)) for name, path in known.items()}


def package_of(module: str) -> Optional[str]:
    """The entry of :data:`RANKS` a module belongs to (the longest matching prefix)."""
    best = None
    for pkg in RANKS:
        if (module == pkg or module.startswith(pkg + ".")) and (best is None or len(pkg) > len(best)):
            best = pkg
    if best == "raywatch" and module != "raywatch":
        return None  # a top-level module or package missing from RANKS
    return best


# --------------------------------------------------------------------------- the checks


def layer_violations(graph) -> List[str]:
    problems = []
    for src, targets in sorted(graph.items()):
        sp = package_of(src)
        if sp is None:
            problems.append(f"{src}: not in the rank table of tests/test_layers.py; give its package a rank")
            continue
        for dst, line, local in targets:
            if not (dst == "raywatch" or dst.startswith("raywatch.")):
                continue
            dp = package_of(dst)
            if dp is None or dp == sp or RANKS[dp] < RANKS[sp] or (sp, dp) in SAME_RANK:
                continue
            where = "inside a function" if local else "at module level"
            problems.append(f"{src}:{line} imports {dst} {where}: {sp} (rank {RANKS[sp]}) may not import "
                            f"{dp} (rank {RANKS[dp]})")
    return problems


def cycles(graph) -> List[List[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    edges = {src: sorted({dst for dst, _, _ in targets if dst in graph}) for src, targets in graph.items()}
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges[v]:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def ray_imports(graph, packages=RAY_FREE) -> List[str]:
    return [f"{src}:{line} imports {dst}" for src, targets in sorted(graph.items())
            if package_of(src) in packages
            for dst, line, _ in targets if dst == "ray" or dst.startswith("ray.")]


def _imports_ray(statement: str) -> bool:
    code = f"import sys\n{statement}\nprint('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


# --------------------------------------------------------------------------- on raywatch


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_every_module_keeps_to_the_ranks(graph):
    assert len(graph) > 60
    assert layer_violations(graph) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_ray_free_packages_never_import_ray_in_their_source(graph):
    covered = {package_of(m) for m in graph} & set(RAY_FREE)
    assert covered == {p for p in RAY_FREE if (ROOT.parent / p.replace(".", "/")).exists()
                       or (ROOT.parent / (p.replace(".", "/") + ".py")).exists()}
    assert ray_imports(graph) == []


def test_ray_free_packages_never_import_ray_when_imported(graph):
    names = sorted(m for m in graph if package_of(m) in RAY_FREE)
    assert len(names) > 40
    assert not _imports_ray("\n".join(f"import {m}" for m in names))


def test_import_raywatch_is_cheap():
    assert not _imports_ray("import raywatch; raywatch.Profile; raywatch.detect_drift; raywatch.AlertEngine")


# --------------------------------------------------------------------------- negative controls


@pytest.fixture
def bad_tree(tmp_path):
    """A raywatch tree with an upward import inside a function, an unranked top-level
    module, a cycle, and a Ray-free module that imports ray inside a function."""
    pkg = tmp_path / "raywatch"
    for sub in ("sinks", "alerts", "expr"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "sinks" / "slack.py").write_text("def send():\n    from raywatch.alerts.engine import AlertEngine\n")
    (pkg / "alerts" / "engine.py").write_text("import raywatch.alerts.rules\nimport raywatch.alerts.hints\nAlertEngine = 1\n")
    # an annotation-only import back (never executed) is not a cycle
    (pkg / "alerts" / "hints.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from raywatch.alerts.engine import AlertEngine\n")
    (pkg / "alerts" / "rules.py").write_text("from raywatch.alerts import engine\n")
    (pkg / "expr" / "matchers.py").write_text("def f():\n    import ray.serve\n")
    (pkg / "helpers.py").write_text("")
    return pkg


def test_the_rank_check_can_fail(bad_tree):
    problems = layer_violations(import_graph(bad_tree))
    assert problems == [
        "raywatch.helpers: not in the rank table of tests/test_layers.py; give its package a rank",
        "raywatch.sinks.slack:2 imports raywatch.alerts.engine inside a function: raywatch.sinks (rank 4) may not "
        "import raywatch.alerts (rank 5)",
    ]


def test_the_cycle_check_can_fail(bad_tree):
    assert cycles(import_graph(bad_tree)) == [["raywatch.alerts.engine", "raywatch.alerts.rules"]]


def test_the_ray_checks_can_fail(bad_tree):
    assert ray_imports(import_graph(bad_tree)) == ["raywatch.expr.matchers:2 imports ray.serve"]
    assert _imports_ray("import raywatch.actor.actor")
