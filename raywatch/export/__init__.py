"""raywatch.export: files for other tools, generated from raywatch's configuration.

=================================== ==============================================================
module                              writes
=================================== ==============================================================
:mod:`raywatch.export.prometheus`   Prometheus alerting rules (``promtool check rules`` accepts them)
:mod:`raywatch.export.alertmanager` an Alertmanager configuration (routing tree, inhibition, receivers)
:mod:`raywatch.export.grafana`      a Grafana dashboard over raywatch's Prometheus metrics
:mod:`raywatch.export.datadog`      Datadog metric monitors, and their sync over Datadog's API
=================================== ==============================================================

Every metric name comes from the metric catalogue (:mod:`raywatch.series`). Every
threshold and duration is written exactly: it reads back as the same number. What a target
cannot express exactly is refused with an :class:`ExportError` naming the rule (or route)
and the field, never rounded; each module's docstring says what its target can express.
The CLI wraps these (``raywatch export prometheus-rules|datadog-monitors|grafana-dashboard|
alertmanager-config``); :func:`write_exports` writes all four files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Union

from raywatch.export.alertmanager import alertmanager_config, alertmanager_config_yaml
from raywatch.export.base import ExportError, prom_duration
from raywatch.export.datadog import datadog_monitors, sync_monitors
from raywatch.export.grafana import grafana_dashboard
from raywatch.export.prometheus import prometheus_rules, prometheus_rules_yaml

__all__ = [
    "prometheus_rules", "prometheus_rules_yaml", "datadog_monitors", "sync_monitors", "grafana_dashboard",
    "alertmanager_config", "alertmanager_config_yaml", "write_exports", "prom_duration", "ExportError",
]


def write_exports(cfg: Any, directory: Union[str, Path]) -> Dict[str, str]:
    """Write prometheus-rules.yml, datadog-monitors.json, grafana-dashboard.json and
    alertmanager.yml into ``directory``; returns {kind: path}. Nothing is written when one
    of them cannot be made (ExportError)."""
    d = Path(directory)
    files = {
        "prometheus-rules": (d / "prometheus-rules.yml", prometheus_rules_yaml(cfg)),
        "datadog-monitors": (d / "datadog-monitors.json", json.dumps(datadog_monitors(cfg), indent=2) + "\n"),
        "grafana-dashboard": (d / "grafana-dashboard.json", json.dumps(grafana_dashboard(cfg), indent=2) + "\n"),
        "alertmanager": (d / "alertmanager.yml", alertmanager_config_yaml(cfg)),
    }
    d.mkdir(parents=True, exist_ok=True)
    for path, text in files.values():
        path.write_text(text, encoding="utf-8")
    return {k: str(p) for k, (p, _) in files.items()}
