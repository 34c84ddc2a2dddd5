"""The Ray internals raywatch relies on are where it expects them, and only the
compatibility module reaches for them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from raywatch.serve import compat

ROOT = Path(__file__).resolve().parents[2]


def test_every_ray_internal_raywatch_uses_is_where_it_was():
    problems = compat.moved()
    assert problems == [], "\n".join(problems)


def test_a_moved_internal_is_named_with_the_ray_version():
    import ray

    gone = compat.Internal("ray.serve.context", "_no_such_context", (), "test the check")
    changed = compat.Internal("ray.serve.context", "_RequestContext", ("request_id", "no_such_field"), "test the check")
    param = compat.Internal("ray.serve._private.api", "serve_start", ("no_such_parameter",), "test the check")
    lines = compat.moved([gone, changed, param])
    assert len(lines) == 3
    assert lines[0].startswith(f"Ray {ray.__version__}: ray.serve.context._no_such_context has moved")
    assert lines[1] == (f"Ray {ray.__version__}: ray.serve.context._RequestContext no longer has no_such_field; "
                        "raywatch uses it to test the check")
    assert "serve_start no longer has no_such_parameter" in lines[2]


def _private_names() -> set:
    return {u for it in compat.INTERNALS for u in it.uses if u.startswith("_") and not u.startswith("__")}


def _ray_internals_used(path: Path) -> list:
    """Imports of Ray internals, and uses of the private attributes compat declares."""
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    private = _private_names()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
            parts = node.module.split(".") + [a.name for a in node.names]
            if any(p.startswith("_") for p in parts):
                found.append(f"{where}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "ray" and any(p.startswith("_") for p in a.name.split(".")):
                    found.append(f"{where}:{node.lineno}: import {a.name}")
        elif isinstance(node, ast.Attribute) and node.attr in private:
            found.append(f"{where}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg in private:
            found.append(f"{where}:{getattr(node, 'lineno', '?')}: {node.arg}=")
    return found


def test_only_the_compat_module_reaches_for_ray_internals():
    files = [p for p in (ROOT / "raywatch").rglob("*.py") if p.name != "compat.py" or p.parent.name != "serve"]
    assert len(files) > 50
    found = [line for p in files for line in _ray_internals_used(p)]
    assert found == []


def test_the_check_finds_a_reach_for_an_internal(tmp_path):
    src = tmp_path / "probe.py"
    src.write_text("from ray.serve._private.api import serve_start\n\ndef f(app):\n    return app._bound_deployment\n")
    assert _ray_internals_used(src) == ["probe.py:1: from ray.serve._private.api import ...", "probe.py:4: ._bound_deployment"]


def test_declared_internals_are_the_ones_compat_imports():
    tree = ast.parse((ROOT / "raywatch" / "serve" / "compat.py").read_text())
    declared = {(it.module, it.name.split(".")[0]) for it in compat.INTERNALS}
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ray"):
            for a in node.names:
                if any(p.startswith("_") for p in node.module.split(".") + [a.name]):
                    imported.add((node.module, a.name))
    assert imported and imported <= declared | {("ray.serve._private", "api")}
    assert ("ray.serve._private.api", "serve_start") in declared


@pytest.mark.parametrize("fn", ["asgi_wrapper_class", "request_context_var"])
def test_the_accessors_answer_without_a_cluster(fn):
    assert getattr(compat, fn)() is not None
