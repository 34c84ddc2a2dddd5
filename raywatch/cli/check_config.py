"""``raywatch check-config``: check raywatch YAMLs and serve config YAMLs."""

from __future__ import annotations

import sys
from typing import Any, List, Optional, Set, Tuple

import click

from raywatch.config import ConfigError, load_config, read_yaml

__all__ = ["check_config"]

UNSET_HINT = "(to check the rest without the secrets: raywatch check-config --allow-unset-env FILE)"


def _is_serve_config(data: Any) -> bool:
    return isinstance(data, dict) and "applications" in data


def _check(path: str, unset: Optional[Set[str]]) -> str:
    """What ``path`` is, once checked; a ConfigError with every problem otherwise."""
    from raywatch.serve.deploy import load_serve_config, reference_problems

    data = read_yaml(path)
    if _is_serve_config(data):
        _, notes = load_serve_config(path, unset_env=unset)
        return "(serve config)" + "".join(f"\n      {n}" for n in notes)
    try:
        cfg = load_config(path, unset_env=unset)
    except ConfigError as err:
        problems: List[str] = list(err.problems)
        problems.extend(p for p in reference_problems(data, f"{path}: ") if p not in problems)
        raise ConfigError(problems, path) from None
    return f"(raywatch config: {len(cfg.alerting.rules)} rule(s), {len(cfg.alerting.sinks)} sink(s))"


@click.command("check-config", short_help="Check raywatch and serve YAMLs: every problem at once.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--allow-unset-env", is_flag=True,
              help="Check files whose ${ENV_VAR} secrets are not set here; name the unset variables.")
def check_config(paths: Tuple[str, ...], allow_unset_env: bool) -> None:
    """Check raywatch YAMLs and serve config YAMLs; errors name the file, field and expectation.

    Every problem of a file is reported at once: raywatch's fields, the rules against the
    metric catalogue, cross-references such as route receivers, and Serve's own fields.
    """
    bad = 0
    for path in paths:
        unset: Optional[Set[str]] = set() if allow_unset_env else None
        try:
            what = _check(path, unset)
            click.echo(click.style("ok", fg="green") + f"  {path} {what}"
                       + (f"\n      unset: {', '.join(sorted(unset))} (set them before deploying)" if unset else ""))
        except ConfigError as err:
            bad += 1
            click.secho(f"error  {path}", fg="red", bold=True, err=True)
            for line in err.problems:
                click.secho(f"  {line}", fg="red", err=True)
            if any("environment variable" in line and "is not set" in line for line in err.problems):
                click.secho(f"  {UNSET_HINT}", err=True)
    if bad:
        sys.exit(2)
