"""``raywatch check-config``: check raywatch YAMLs and serve config YAMLs."""

from __future__ import annotations

import sys
from typing import Any, Tuple

import click

from raywatch.config import ConfigError, load_config, read_yaml

__all__ = ["check_config"]


def _is_serve_config(data: Any) -> bool:
    return isinstance(data, dict) and "applications" in data


@click.command("check-config")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check_config(paths: Tuple[str, ...]) -> None:
    """Check raywatch YAMLs and serve config YAMLs; errors name the file, field and expectation."""
    from raywatch.serve.deploy import load_serve_config

    bad = 0
    for path in paths:
        try:
            if _is_serve_config(read_yaml(path)):
                _, notes = load_serve_config(path)
                click.echo(click.style("ok", fg="green") + f"  {path} (serve config)" + "".join(f"\n      {n}" for n in notes))
            else:
                cfg = load_config(path)
                click.echo(
                    click.style("ok", fg="green")
                    + f"  {path} (raywatch config: {len(cfg.alerting.rules)} rule(s), {len(cfg.alerting.sinks)} sink(s))"
                )
        except ConfigError as err:
            bad += 1
            click.secho(f"error  {path}", fg="red", bold=True, err=True)
            for line in err.problems:
                click.secho(f"  {line}", fg="red", err=True)
    if bad:
        sys.exit(2)
