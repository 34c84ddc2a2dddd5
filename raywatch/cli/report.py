"""``raywatch report``: the HTML report, from a running stats actor or its SQLite file."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import click

from raywatch.cli.common import (ADDRESS_HELP, CONFIG_HELP, CONNECT_TIMEOUT, TIMEOUT_HELP, ask, connect, fail,
                                 load_monitor_config, model_keys, no_such_model, since)

__all__ = ["report", "only"]


OFFLINE_HINT = "For a report without Ray: --sqlite ~/.raywatch/raywatch-stats.sqlite (the stats actor's file)."


def only(hist: Dict[str, Any], keys: List[str]) -> Dict[str, Any]:
    """The history of the models ``keys`` only (their windows, features and alerts)."""
    def key_of(alert: Dict[str, Any]) -> str:
        labels = alert.get("labels") or {}
        return f"{labels.get('app')}/{labels.get('deployment')}"

    return {"models": {k: hist["models"][k] for k in keys},
            "alerts": [a for a in hist.get("alerts") or [] if key_of(a) in keys]}


@click.command(short_help="The HTML report, from the actor or its SQLite file.")
@click.option("-o", "--output", default="raywatch-report.html", show_default=True, type=click.Path(dir_okay=False), help="Where to write the HTML file.")
@click.option("--model", help="Only this model: a key (app/deployment) or a model name, as for status.")
@click.option("--since", "since_text", metavar="DURATION", help="Only the last DURATION of history (e.g. 30m, 6h, 2d).")
@click.option("--sqlite", "sqlite_path", type=click.Path(dir_okay=False), help="Read a stats actor's SQLite file instead of asking a running actor.")
@click.option("--address", help=ADDRESS_HELP)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help=CONFIG_HELP)
@click.option("--timeout", default=CONNECT_TIMEOUT, show_default=True, help=TIMEOUT_HELP)
@click.option("--title", default="raywatch report", show_default=True)
def report(output: str, model: Optional[str], since_text: Optional[str], sqlite_path: Optional[str], address: Optional[str],
           config_path: Optional[str], timeout: float, title: str) -> None:
    """Write the HTML report (one self-contained offline file) from stored history."""
    from raywatch.report import write_report

    cfg = load_monitor_config(config_path) if config_path else None
    t_since = since(since_text)
    if sqlite_path:
        from raywatch.aggregate import history_from_sqlite

        try:
            hist = history_from_sqlite(sqlite_path, since=t_since, config=cfg)
        except FileNotFoundError:
            fail(f"{sqlite_path}: no such file (the stats actor's SQLite file is actor.sqlite_path in the raywatch YAML)")
    else:
        connect(address, timeout, offline_hint=OFFLINE_HINT)
        from raywatch.actor import api

        hist = ask("for its history", lambda: api.history(None, t_since, config=cfg, timeout=max(timeout, 60.0)), max(timeout, 60.0))
    if model is not None:
        keys = model_keys(hist.get("models") or {}, model)
        if not keys:
            no_such_model(model, hist.get("models") or {})
        hist = only(hist, keys)
    path = write_report(hist, output, title=title)
    n_windows = sum(len(m.get("windows") or []) for m in hist.get("models", {}).values())
    click.echo(f"report written to {path} ({len(hist.get('models') or {})} model(s), {n_windows} window(s), "
               f"{len(hist.get('alerts') or [])} alert event(s))")
