"""``raywatch audit``: the compliance record of a model, as JSON and HTML.

::

    raywatch audit --model fraud --since 30d -o fraud-audit      # fraud-audit.json + fraud-audit.html
    raywatch audit --model fraud --sqlite ~/.raywatch/raywatch-remediation.sqlite   # without Ray

The record comes from the remediation controller's audit trail (or the SQLite file that
holds it), with the alerts of the stats actor's history when a stats actor is reachable.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, List, Optional

import click

from raywatch.cli.common import ADDRESS_HELP, connect, fail, since as since_opt

__all__ = ["audit", "resolve_model", "remediation_lines"]


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
    waiting for approval first (the hook of ``/work/coord/hooks-14.md``).

    >>> remediation_lines({"open": {"d1234567890ab": "awaiting_approval", "e2": "canary"}, "pending_approval": ["d1234567890ab"]})
    ['remediation: d1234567890a awaiting approval (raywatch approve d1234567890a)', 'remediation: e2 canary']
    """
    out = []
    pending = set(status.get("pending_approval") or [])
    for d, state in sorted((status.get("open") or {}).items(), key=lambda x: x[0] not in pending):
        if d in pending:
            out.append(f"remediation: {d[:12]} awaiting approval (raywatch approve {d[:12]})")
        else:
            out.append(f"remediation: {d[:12]} {state}")
    return out


def _events(sqlite: Optional[str], address: Optional[str], controller: str, namespace: str, since: Optional[float]):
    from raywatch.aggregate.audit import AuditEvent, AuditLog

    if sqlite:
        if not os.path.exists(os.path.expanduser(sqlite)):
            fail(f"no audit file at {sqlite}")
        alog = AuditLog.open(os.path.expanduser(sqlite))
        try:
            return alog.events(since=since), None
        finally:
            alog.close()
    ray = connect(address)
    try:
        handle = ray.get_actor(controller, namespace=namespace)
    except ValueError:
        fail(f"no remediation controller {namespace}/{controller} on this cluster (use --sqlite for its file)")
    data = ray.get(handle.events.remote(None, since), timeout=60)
    return [AuditEvent.from_data(d) for d in data], ray


def _alerts(ray: Any, model: str, since: Optional[float]) -> Optional[list]:
    """The model's alert transitions from the stats actor's history (None when unreachable)."""
    if ray is None:
        return None
    try:
        from raywatch.actor.actor import get_for_model

        hist = ray.get(get_for_model(model, wait=False).history.remote(model, since), timeout=15)
        return list(hist.get("alerts") or [])
    except Exception:  # noqa: BLE001 - the record says where its alerts came from
        return None


@click.command("audit")
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
    record = compliance_record(key, events, since=t_since, now=time.time(), alerts=_alerts(ray, key, t_since))
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
