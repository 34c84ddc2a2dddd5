"""The README's YAML and metrics references cover every field and every metric."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## YAML reference")
    end = text.find("\n## ", text.index("## Metrics reference", start) + 3)
    return text[start:] if end < 0 else text[start:end]


def _fields(model: type, prefix: str = "", depth: int = 2):
    for name, f in model.model_fields.items():
        path = prefix + (f.alias or name)
        yield path
        if depth > 1:
            for t in (f.annotation, *typing.get_args(f.annotation)):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    yield from _fields(t, path + ".", depth - 1)


def test_yaml_reference_names_every_setting():
    from raywatch.config import MonitorConfig
    from raywatch.config import ApplicationArgs, MonitoredAppArgs

    text = _section()
    missing = []
    sections = {n for n, f in MonitorConfig.model_fields.items() if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)}
    for path in _fields(MonitorConfig):
        if path in sections:
            continue  # a section: its fields are listed
        # `a.b` alone, or `a.b.<name>` for mappings of per-name settings
        if f"`{path}`" not in text and f"`{path}.<" not in text:
            missing.append(path)
    for path in list(_fields(MonitoredAppArgs, depth=1)) + [f"application.{f}" for f in ApplicationArgs.model_fields]:
        if f"`{path}" not in text:
            missing.append(path)
    assert missing == []


def test_metrics_reference_names_every_metric():
    from raywatch.series import METRICS

    text = _section()
    # the Datadog sink's own gauges exist in Datadog only, under their dotted names
    names = {m.datadog if m.datadog_name else m.prometheus for m in METRICS.values()}
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert missing == []
