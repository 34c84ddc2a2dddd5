"""``raywatch report``: the HTML report, from a running stats actor or its SQLite file."""

from __future__ import annotations

from typing import Optional

import click

from raywatch.cli.common import ADDRESS_HELP, CONFIG_HELP, connect, fail, load_monitor_config, since

__all__ = ["report"]


@click.command()
@click.option("-o", "--output", default="raywatch-report.html", show_default=True, type=click.Path(dir_okay=False), help="Where to write the HTML file.")
@click.option("--model", help="Only this model key (app/deployment).")
@click.option("--since", "since_text", metavar="DURATION", help="Only the last DURATION of history (e.g. 30m, 6h, 2d).")
@click.option("--sqlite", "sqlite_path", type=click.Path(dir_okay=False), help="Read a stats actor's SQLite file instead of asking a running actor.")
@click.option("--address", help=ADDRESS_HELP)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help=CONFIG_HELP)
@click.option("--title", default="raywatch report", show_default=True)
def report(output: str, model: Optional[str], since_text: Optional[str], sqlite_path: Optional[str], address: Optional[str],
           config_path: Optional[str], title: str) -> None:
    """Write the HTML report (one self-contained offline file) from stored history."""
    from raywatch.report import write_report

    cfg = load_monitor_config(config_path) if config_path else None
    t_since = since(since_text)
    if sqlite_path:
        from raywatch.aggregate import history_from_sqlite

        try:
            hist = history_from_sqlite(sqlite_path, model=model, since=t_since, config=cfg)
        except FileNotFoundError:
            fail(f"{sqlite_path}: no such file (the stats actor's SQLite file is actor.sqlite_path in the raywatch YAML)")
    else:
        connect(address)
        from raywatch.actor.api import history

        hist = history(model, t_since, config=cfg)
    path = write_report(hist, output, title=title)
    n_windows = sum(len(m.get("windows") or []) for m in hist.get("models", {}).values())
    click.echo(f"report written to {path} ({len(hist.get('models') or {})} model(s), {n_windows} window(s), "
               f"{len(hist.get('alerts') or [])} alert event(s))")
