"""DESIGN.md's layering: the pure core (stats, drift, alerts, sinks) never imports ray, and
``import raywatch`` stays cheap. Checked in a fresh interpreter so other tests' imports
don't hide a violation."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import raywatch

CORE = ("stats", "drift", "alerts", "sinks")


def _core_modules():
    root = Path(raywatch.__file__).parent
    for pkg in CORE:
        yield f"raywatch.{pkg}"
        for info in pkgutil.iter_modules([str(root / pkg)]):
            yield f"raywatch.{pkg}.{info.name}"


def _imports_ray(statement: str) -> bool:
    code = f"import sys\n{statement}\nprint('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_core_never_imports_ray():
    modules = sorted(set(_core_modules()))
    assert len(modules) > 20
    assert not _imports_ray("\n".join(f"import {m}" for m in modules))


def test_import_raywatch_is_cheap():
    assert not _imports_ray("import raywatch; raywatch.Profile; raywatch.detect_drift; raywatch.AlertEngine")


def test_layer_check_can_fail():
    assert _imports_ray("import raywatch.actor.actor")
