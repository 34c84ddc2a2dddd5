"""``raywatch replay-dead-letters``: send the notifications in a dead-letter file again."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Tuple

import click

from raywatch.cli.common import fail, load_monitor_config

__all__ = ["replay_dead_letters"]


@click.command("replay-dead-letters", short_help="Send a dead-letter file's notifications again.")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False), help="raywatch YAML with the sinks (secrets come from it).")
@click.option("--sink", "sinks", multiple=True, help="Only replay notifications of this sink. Repeatable.")
@click.option("--max-attempts", type=int, help="Attempts per notification (default: the sink's retry setting).")
def replay_dead_letters(path: str, config_path: str, sinks: Tuple[str, ...], max_attempts: Optional[int]) -> None:
    """Send the notifications in a dead-letter file again; only what fails again stays."""
    from raywatch.alerts.deadletter import ReplayBusy
    from raywatch.alerts.replay import replay

    cfg = load_monitor_config(config_path)
    if not Path(path).exists():
        fail(f"{path}: no such dead-letter file")
    try:
        res = replay(path, cfg, sinks=list(sinks) or None, max_attempts=max_attempts)
    except ReplayBusy as exc:
        fail(f"{path}: {exc} (another replay of this file is running; try again when it ends)")
    click.echo(f"sent {res.sent}, best effort {res.best_effort}, failed again {res.failed}, skipped {res.skipped}, "
               f"superseded {res.superseded}; {res.remaining} left in {path}")
    if res.failed:
        sys.exit(1)
