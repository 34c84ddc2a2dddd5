"""``raywatch export``: files for other tools from a raywatch YAML's alert rules and routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Set, Tuple

import click

from raywatch.cli.common import config_error
from raywatch.config import ConfigError, MonitorConfig, load_config

__all__ = ["export", "EXPORTS"]

EXPORTS: Dict[str, Tuple[str, str]] = {
    "prometheus-rules": ("prometheus_rules_yaml", "yaml"),
    "grafana-dashboard": ("grafana_dashboard", "json"),
    "datadog-monitors": ("datadog_monitors", "json"),
    "alertmanager-config": ("alertmanager_config_yaml", "yaml"),
}
"""Each export: the function of :mod:`raywatch.export` that makes it, and its format."""


@click.command(short_help="Files for Prometheus, Alertmanager, Grafana, Datadog.")
@click.argument("what", type=click.Choice(sorted(EXPORTS)))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="raywatch YAML whose alert rules to export (default: raywatch's defaults).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file (default: standard output).")
def export(what: str, config_path: Optional[str], output: Optional[str]) -> None:
    """Prometheus alert rules, a Grafana dashboard, Datadog monitors or an Alertmanager
    config from a raywatch YAML's alert rules and routes."""
    from raywatch import export as exports

    if config_path:
        unset: Set[str] = set()  # exports never contain secrets: unset ${VAR} references are fine
        try:
            cfg = load_config(config_path, unset_env=unset)
        except ConfigError as err:
            config_error(err)
        if unset:
            click.echo(f"note: unset environment variables: {', '.join(sorted(unset))} "
                       "(the exports hold no secrets; set them before deploying)", err=True)
    else:
        cfg = MonitorConfig()
        click.echo("note: no --config given; exporting raywatch's defaults (no alert rules)", err=True)
    func_name, kind = EXPORTS[what]
    result = getattr(exports, func_name)(cfg)
    if not isinstance(result, str):
        if kind == "yaml":
            import yaml

            result = yaml.safe_dump(result, sort_keys=False)
        else:
            result = json.dumps(result, indent=2)
    if output:
        Path(output).write_text(result if result.endswith("\n") else result + "\n")
        click.echo(f"{what} written to {output}")
    else:
        click.echo(result.rstrip("\n"))
