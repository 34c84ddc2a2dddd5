"""``raywatch shards add``: add a stats actor shard to a running installation.

The models whose owner changes with one more shard are handed over, with their windows, to
their new owner while batches keep arriving (the old shard passes on what still reaches it);
then every shard knows the new count. Safe to run again after a crash half-way: it finishes
the same add. See :func:`raywatch.actor.add_shard`.
"""

from __future__ import annotations

from typing import Optional

import click

from raywatch.cli.common import ADDRESS_HELP, CONFIG_HELP, TIMEOUT_HELP, ask, connect, fail, load_monitor_config

__all__ = ["shards"]


@click.group(short_help="Stats actor shards: add one at run time.")
def shards() -> None:
    """The stats actor's shards (actor.shards in the raywatch YAML)."""


@shards.command("add", short_help="Add a stats actor shard; the models that move keep their windows.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help=CONFIG_HELP)
@click.option("--address", help=ADDRESS_HELP)
@click.option("--timeout", default=60.0, show_default=True, help=TIMEOUT_HELP)
def add(config_path: Optional[str], address: Optional[str], timeout: float) -> None:
    """Add shard N to the N running stats actor shards and hand over the models it now owns
    (and those that move between the others), without losing a window. Replicas learn the new
    count from the old shards' answers; set actor.shards in the YAML to N+1 for the next deploy.
    """
    cfg = load_monitor_config(config_path) if config_path else None
    connect(address, timeout)
    from raywatch.actor import add_shard

    try:
        out = ask("to add a shard", lambda: add_shard(cfg, timeout=timeout), timeout)
    except RuntimeError as exc:
        fail(str(exc))
    click.echo(f"{out['shards']} shards: created {out['created']}")
    for m in out["moved"]:
        note = "" if m["imported"] else " (done by an earlier run)"
        click.echo(f"moved {m['model']}: shard {m['from']} -> shard {m['to']}{note}")
    click.echo(f"{len(out['moved'])} moved, {len(out['stayed'])} stayed")
