"""``raywatch reset``: forget a model's state and history in the stats actor.

The stats actor keeps each model's counters, windows, replicas, alert state and history in
its SQLite file (``actor.sqlite_path``, by default ``~/.raywatch/raywatch-stats.sqlite``), so
they outlive a restart — and a redeployed model under the same key starts with them. This
asks the running actor that owns the model to forget it (``StatsActor.reset_model``); the
model's replicas register it again with their next flush.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import click

from raywatch.cli.common import (ADDRESS_HELP, CONFIG_HELP, CONNECT_TIMEOUT, TIMEOUT_HELP, ask, connect, fail,
                                 load_monitor_config, model_keys, no_such_model)

__all__ = ["reset"]


def _said(result: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in result.items() if not isinstance(v, (dict, list)))


@click.command(short_help="Forget a model's state and history.")
@click.option("--model", required=True, help="The model: a key (app/deployment) or a model name, as for status.")
@click.option("--address", help=ADDRESS_HELP)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help=CONFIG_HELP)
@click.option("--timeout", default=CONNECT_TIMEOUT, show_default=True, help=TIMEOUT_HELP)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--sqlite", "sqlite_path", type=click.Path(dir_okay=False),
              help="Forget the model in this stats actor's SQLite file instead (no actor may be running on it).")
def reset(model: str, address: Optional[str], config_path: Optional[str], timeout: float, yes: bool,
          sqlite_path: Optional[str]) -> None:
    """Forget a model's counters, windows, replicas, alerts and history in the running stats
    actor (and its SQLite file), e.g. after redeploying a different model under the same key.

    With no cluster running, `--sqlite PATH` forgets it in the actor's SQLite file
    (actor.sqlite_path, by default ~/.raywatch/raywatch-stats.sqlite).
    """
    if sqlite_path:
        _reset_file(sqlite_path, model, yes)
        return
    cfg = load_monitor_config(config_path) if config_path else None
    ray = connect(address, timeout, offline_hint="with no cluster running, `raywatch reset --model M --sqlite FILE` resets the state file")
    from raywatch.actor import api

    st = ask("status", lambda: api.status(None, config=cfg, timeout=timeout), timeout)
    if not st.get("actors"):
        fail("no raywatch stats actor is running on this cluster: nothing to reset "
             "(its stored state is actor.sqlite_path, by default ~/.raywatch/raywatch-stats.sqlite)")
    models = st.get("models") or {}
    keys = model_keys(models, model)
    if not keys:
        no_such_model(model, models)
    if len(keys) > 1:
        fail(f"{model!r} names {len(keys)} models ({', '.join(sorted(keys))}); give the app/deployment key")
    key = keys[0]
    if not yes:
        click.confirm(f"forget everything the stats actor knows about {key} (state, windows, alerts, history)?", abort=True)
    shard = models[key].get("shard", 0)
    handle = next((h for s, h in api.actors(cfg) if s == shard), None)
    if handle is None:
        fail(f"the stats actor of shard {shard}, which owns {key}, is gone")
    try:
        method = handle.reset_model
    except AttributeError:
        fail("this stats actor cannot reset a model (its raywatch predates `raywatch reset`); restart it with this raywatch")
    result = ask(f"to reset {key}", lambda: ray.get(method.remote(key), timeout=timeout), timeout) or {}
    # the other shards' files may keep alert transitions the model made there before a hand-over
    others = [h for s, h in api.actors(cfg) if s != shard]
    if others and isinstance(result, Mapping):
        left = ask(f"the other shards to forget {key}'s rows",
                   lambda: ray.get([h.reset_model.remote(key) for h in others], timeout=timeout), timeout) or []
        deleted = dict(result.get("deleted") or {})
        for answer in left:
            for table, n in ((answer or {}).get("deleted") or {}).items():
                deleted[table] = deleted.get(table, 0) + int(n)
        result = {**result, "deleted": deleted}
    click.echo(f"reset {key}" + (f": {_said(result)}" if isinstance(result, Mapping) and _said(result) else ""))


def _reset_file(path: str, model: str, yes: bool) -> None:
    from raywatch.aggregate.offline import reset_sqlite

    if not yes:
        click.confirm(f"forget everything {path} holds about {model} (state, windows, alerts, history)?", abort=True)
    try:
        result = reset_sqlite(path, model)
    except FileNotFoundError:
        fail(f"{path}: no such file (the stats actor's SQLite file is actor.sqlite_path in the raywatch YAML)")
    except RuntimeError as exc:
        fail(f"{path}: {exc}")
    if not result.get("keys"):
        fail(f"{path} holds no model {model!r}")
    click.echo(f"reset {', '.join(result['keys'])} in {path}: " + ", ".join(f"{t} {n}" for t, n in result["deleted"].items()))
