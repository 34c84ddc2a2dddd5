"""What the commands share: failing with a message, configuration errors, connecting to
Ray, formatting figures, reading ``--since``."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NoReturn, Optional

import click

from raywatch.config import ConfigError, MonitorConfig, load_config, parse_duration

__all__ = ["fail", "config_error", "load_monitor_config", "connect", "fmt", "since", "ADDRESS_HELP", "CONFIG_HELP"]

ADDRESS_HELP = "Ray cluster address (default: $RAY_ADDRESS or auto)."
CONFIG_HELP = "raywatch YAML (actor name, namespace, shards)."


def fail(message: str, code: int = 1) -> NoReturn:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


def config_error(err: ConfigError) -> NoReturn:
    click.secho("configuration error:", fg="red", bold=True, err=True)
    for line in err.problems:
        click.secho(f"  {line}", fg="red", err=True)
    sys.exit(2)


def load_monitor_config(path: Optional[str]) -> MonitorConfig:
    """The raywatch YAML at ``path`` (the defaults without one); exits 2 naming its problems."""
    if path is None:
        return MonitorConfig()
    try:
        return load_config(path)
    except ConfigError as err:
        config_error(err)


def connect(address: Optional[str]) -> Any:
    """Connect to the Ray cluster at ``address`` ($RAY_ADDRESS or auto); exits 1 saying how to start one."""
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or "auto"
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, namespace="raywatch")
        except ConnectionError as exc:
            fail(f"cannot connect to a Ray cluster at {address!r}: {exc}\n"
                 "Start one (`ray start --head`) or pass --address; for a report without Ray use --sqlite.")
    return ray


def fmt(v: Any, unit: str = "") -> str:
    """A figure for people (``12 ms``, ``2.5%``); a dash when it is not a number."""
    from raywatch.report.svg import format_value

    return format_value(v if isinstance(v, (int, float)) and not isinstance(v, bool) else None, unit)


def since(value: Optional[str]) -> Optional[float]:
    """The UTC time ``--since DURATION`` ago (None without the option)."""
    if value is None:
        return None
    try:
        return time.time() - parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
