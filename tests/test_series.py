"""The metric catalogue (raywatch/series.py) is the only place a metric name is written.

Every module in raywatch/ other than the catalogue fails this test when one of its string
literals (docstrings and other bare string statements aside) is a catalogue name
(``latency_p95_seconds``), or holds its Prometheus or Datadog form
(``raywatch_latency_p95_seconds``, ``raywatch.latency_p95_seconds``) on its own or inside a
larger string such as a PromQL query. Modules read the names from the catalogue instead
(``series.LATENCY_P95_SECONDS.name``, ``.prometheus``, ``.datadog``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import List, Tuple

import pytest

from raywatch import series

ROOT = Path(__file__).resolve().parents[1] / "raywatch"
CATALOGUE = ROOT / "series.py"

NAMES = frozenset(series.METRICS)
FORMS = sorted({m.prometheus for m in series.METRICS.values()} | {m.datadog for m in series.METRICS.values()},
               key=len, reverse=True)
_FORM_RE = re.compile(r"(?<![\w.])(" + "|".join(re.escape(f) for f in FORMS) + r")(?![\w])")


def _docstrings(tree: ast.AST) -> set:
    """String constants that are statements of their own (docstrings, attribute docs)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}


def metric_names_written(path: Path) -> List[Tuple[int, str]]:
    """(line, what) for each metric name the module writes in a string literal, in order."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
            continue
        text = node.value
        if text in NAMES:
            found.append((node.lineno, node.col_offset, text))
        for m in _FORM_RE.finditer(text):
            found.append((node.lineno, node.col_offset + m.start(), m.group(1)))
    return [(line, what) for line, _, what in sorted(found)]


def violations(paths) -> List[str]:
    return [f"{p.relative_to(ROOT.parent)}:{line}: {what}" for p in paths for line, what in metric_names_written(p)]


def _modules(root: Path = ROOT) -> List[Path]:
    return sorted(p for p in root.rglob("*.py") if p != CATALOGUE)


def test_no_module_but_the_catalogue_writes_a_metric_name():
    paths = _modules()
    assert len(paths) > 60
    found = violations(paths)
    assert found == [], "read these names from raywatch.series:\n" + "\n".join(found)


def test_the_catalogue_itself_is_what_the_check_reads():
    assert {"latency_p95_seconds", "drift_score", "requests_total"} <= NAMES
    assert "raywatch_latency_p95_seconds" in FORMS and "raywatch.alert.firing" in FORMS
    assert list(metric_names_written(CATALOGUE))  # the names are written there, and only there


def test_the_check_can_fail(tmp_path):
    mod = tmp_path / "raywatch" / "report" / "bad.py"
    mod.parent.mkdir(parents=True)
    mod.write_text('''"""A docstring may mention latency_p95_seconds and raywatch_error_rate."""
KEY = "latency_p95_seconds"
"""So may an attribute's doc: drift_score."""
QUERY = f"max by (model) (raywatch_error_rate{{{'x'}}}) / raywatch_requests_total"
DD = "avg:raywatch.throughput_rps{*}"
FINE = ["latency_p95_seconds_extra", "my_raywatch_error_rate", "error rate", "raywatch_error_rates"]
''')
    assert sorted(metric_names_written(mod)) == [
        (2, "latency_p95_seconds"), (4, "raywatch_error_rate"), (4, "raywatch_requests_total"),
        (5, "raywatch.throughput_rps")]


@pytest.mark.parametrize("package", ["expr", "config", "sinks", "alerts", "export", "report"])
def test_these_packages_read_names_from_the_catalogue(package):
    """The packages this change moved onto the catalogue (the whole-tree test above also
    covers the rest of raywatch/)."""
    assert violations(_modules(ROOT / package)) == []


def test_the_alerting_engine_takes_the_catalogues_series():
    from raywatch.alerts import Series as AlertSeries
    from raywatch.alerts.alert import Series as AlertModuleSeries

    assert AlertSeries is AlertModuleSeries is series.Series
