"""``raywatch deploy``: check a serve config YAML and deploy it, like ``serve deploy``."""

from __future__ import annotations

from typing import Dict, Optional

import click

from raywatch.cli.common import ADDRESS_HELP, CONNECT_TIMEOUT, TIMEOUT_HELP, config_error, connect, fail
from raywatch.config import ConfigError

__all__ = ["deploy", "print_states"]


def print_states(states: Dict[str, str]) -> None:
    """One line of application states as a deploy progresses."""
    click.echo("  " + ", ".join(f"{n}: {s}" for n, s in states.items()))


@click.command(short_help="Check a serve config YAML, then deploy it.")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--address", help=ADDRESS_HELP)
@click.option("--connect-timeout", default=CONNECT_TIMEOUT, show_default=True, help=TIMEOUT_HELP)
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for the applications to run.")
def deploy(config: str, address: Optional[str], connect_timeout: float, timeout: float) -> None:
    """Check a serve config YAML (raywatch's parts included) and deploy it, like `serve deploy`.

    Relative `monitor:`/`profile:` paths are resolved against the YAML file's directory.
    """
    from raywatch.serve.deploy import deploy_serve_config, load_serve_config

    try:
        load_serve_config(config)  # before touching Ray
    except ConfigError as err:
        config_error(err)
    connect(address, connect_timeout)
    try:
        deploy_serve_config(config, timeout=timeout, on_change=print_states)
    except ConfigError as err:
        config_error(err)
    except RuntimeError as exc:
        fail(str(exc))
    click.echo(f"deployed {config}")
