"""``raywatch audit``: the compliance record of a model, as JSON and HTML.

::

    raywatch audit --model fraud --since 30d -o fraud-audit      # fraud-audit.json + fraud-audit.html
    raywatch audit --model fraud --sqlite ~/.raywatch/raywatch-stats.sqlite   # without Ray

The record comes from the audit trail — kept in the stats actor's SQLite file, read through
the remediation controller (or the stats actors when no controller runs), or from the file
itself with ``--sqlite`` (the stats actor's file, or the controller's own) — with the alerts
of the stats actor's history and the model's configuration when a stats actor is reachable.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, List, Optional

import click

from raywatch.cli.common import ADDRESS_HELP, connect, fail, since as since_opt

__all__ = ["audit", "resolve_model", "remediation_lines", "status_block"]


def resolve_model(wanted: str, models: List[str]) -> str:
    """The model key ``wanted`` names: a key (``app/deployment``) or a deployment name.

    >>> resolve_model("fraud", ["a/fraud", "b/other"]), resolve_model("b/other", ["a/fraud", "b/other"])
    ('a/fraud', 'b/other')
    """
    if wanted in models:
        return wanted
    hits = [m for m in models if m.partition("/")[2] == wanted or m.partition("/")[0] == wanted]
    if len(hits) == 1:
        return hits[0]
    raise click.BadParameter(f"no single model named {wanted!r} in the audit trail (models: {', '.join(models) or 'none'})")


def remediation_lines(status: Any) -> List[str]:
    """Lines for ``raywatch status``: the remediation controller's open decisions, those
    waiting for approval first, with the command that answers them.

    >>> remediation_lines({"open": {"d1234567890ab": "awaiting_approval", "e2": "canary"}, "pending_approval": ["d1234567890ab"],
    ...                    "decision_models": {"d1234567890ab": "a/fraud"}})
    ['remediation: d1234567890a (a/fraud) awaiting approval: raywatch approve d1234567890a (or reject)', 'remediation: e2 canary']
    """
    out = []
    pending = set(status.get("pending_approval") or [])
    models = status.get("decision_models") or {}
    for d, state in sorted((status.get("open") or {}).items(), key=lambda x: x[0] not in pending):
        model = f" ({models[d]})" if d in models else ""
        if d in pending:
            out.append(f"remediation: {d[:12]}{model} awaiting approval: raywatch approve {d[:12]} (or reject)")
        else:
            out.append(f"remediation: {d[:12]}{model} {state}")
    return out


def status_block(st: Any) -> List[str]:
    """The remediation lines of ``raywatch status``: from the controller's own answer
    (``st["remediation"]``, asked by the command) or, without one, as the stats actors last
    heard it; nothing when no model remediates."""
    answers = [st["remediation"]] if st.get("remediation") else [
        (a.get("remediation") or {}).get("controller") for a in st.get("actors") or [] if a]
    lines: List[str] = []
    for ans in answers:
        if not ans:
            continue
        for one in (ans.get("controllers") or {}).values() if "controllers" in ans else [ans]:
            lines.extend(x for x in remediation_lines(one) if x not in lines)
    if not lines and any(answers):
        lines.append("remediation: no decision open")
    return lines


def _events(sqlite: Optional[str], address: Optional[str], controller: str, namespace: str, since: Optional[float]):
    from raywatch.aggregate.audit import AuditEvent

    if sqlite:
        from raywatch.aggregate.offline import audit_from_sqlite

        try:
            got = audit_from_sqlite(sqlite, since)  # read from a copy: a running actor is not disturbed
        except FileNotFoundError:
            fail(f"no audit file at {sqlite}")
        return [AuditEvent.from_data(d) for d in got["events"]], got["alerts"]
    ray = connect(address)
    try:
        handle = ray.get_actor(controller, namespace=namespace)
        data = ray.get(handle.events.remote(None, since), timeout=60)
    except ValueError:  # no controller now: the stats actors' files keep the trails
        from raywatch.actor import api

        handles = api.actors()
        if not handles:
            fail(f"no remediation controller {namespace}/{controller} and no stats actor on this cluster "
                 "(use --sqlite with the stats actor's file)")
        data = [d for _, h in handles for d in ray.get(h.audit.remote(None, since), timeout=60)]
    return [AuditEvent.from_data(d) for d in data], ray


def _alerts(ray: Any, model: str, since: Optional[float]) -> Optional[list]:
    """The model's alert transitions from the stats actor's history (``ray`` may be the
    transitions a file holds, of every model); None when unreachable."""
    if isinstance(ray, list):
        return [a for a in ray if a.get("model_key") == model] or None
    if ray is None:
        return None
    try:
        from raywatch.actor.actor import get_for_model

        hist = ray.get(get_for_model(model, wait=False).history.remote(model, since), timeout=15)
        return list(hist.get("alerts") or [])
    except Exception:  # noqa: BLE001 - the record says where its alerts came from
        return None


def _monitoring(ray: Any, model: str) -> Optional[dict]:
    """What was monitored: the model's configuration as the stats actor holds it (secrets as
    their ``${ENV}`` references or masked), None when unreachable."""
    if ray is None or isinstance(ray, list):
        return None
    try:
        from raywatch.actor.actor import get_for_model

        return ray.get(get_for_model(model, wait=False).get_config.remote(model), timeout=15)
    except Exception:  # noqa: BLE001 - the record says nothing rather than something wrong
        return None


@click.command("audit", short_help="The compliance record of remediation, JSON and HTML.")
@click.option("--model", "model", required=True, help="Model key (app/deployment) or deployment name.")
@click.option("--since", "since_", default="30d", show_default=True, help="How far back (e.g. 30d, 12h).")
@click.option("-o", "--output", default=None, help="Path stem: writes STEM.json and STEM.html (default audit-<model>).")
@click.option("--json-only", is_flag=True, help="Print the JSON record instead of writing files.")
@click.option("--sqlite", default=None, help="Read the audit trail from this SQLite file, without Ray.")
@click.option("--controller", default="raywatch-remediation", show_default=True, help="Remediation controller actor name.")
@click.option("--namespace", default="raywatch", show_default=True, help="Its Ray namespace.")
@click.option("--address", default=None, help=ADDRESS_HELP)
def audit(model: str, since_: str, output: Optional[str], json_only: bool, sqlite: Optional[str], controller: str,
          namespace: str, address: Optional[str]) -> None:
    """The compliance record of a model: alerts, decisions with their evidence, approvals."""
    from raywatch.remediate.record import compliance_record
    from raywatch.report.audit import render

    t_since = since_opt(since_)
    events, ray = _events(sqlite, address, controller, namespace, t_since)
    key = resolve_model(model, sorted({e.model for e in events}))
    record = compliance_record(key, events, since=t_since, now=time.time(), alerts=_alerts(ray, key, t_since),
                               monitoring=_monitoring(ray, key))
    text = json.dumps(record, indent=2, sort_keys=True, default=str)
    if json_only:
        click.echo(text)
        return
    stem = output or f"audit-{key.replace('/', '-')}"
    for path, body in ((f"{stem}.json", text), (f"{stem}.html", render(record))):
        fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
    s = record["summary"]
    click.echo(f"{key}: {sum(s.values())} decisions ({', '.join(f'{v} {k}' for k, v in sorted(s.items())) or 'none'}), "
               f"{len(record['alerts'])} alerts, {len(record['approvals'])} approvals → {stem}.json, {stem}.html")
