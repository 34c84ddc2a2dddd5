"""``raywatch approve`` / ``raywatch reject``: answer a remediation decision that waits.

::

    raywatch approve 3f9c2a1b7d4e --comment "checked the data window"
    raywatch reject 3f9c2a1b7d4e --by alice --comment "holiday traffic, wait"

The answer, who gave it (``--by``, default the login name) and the comment go into the
audit trail; the decision then goes on (approve) or stops (reject).
"""

from __future__ import annotations

import getpass
from typing import Optional

import click

from raywatch.cli.common import ADDRESS_HELP, connect, fail

__all__ = ["approve", "reject"]


def _answer(kind: str, decision: str, by: Optional[str], comment: str, controller: str, namespace: str,
            address: Optional[str]) -> None:
    ray = connect(address)
    try:
        handle = ray.get_actor(controller, namespace=namespace)
    except ValueError:
        fail(f"no remediation controller {namespace}/{controller} on this cluster")
    who = by or getpass.getuser()
    try:
        full = ray.get(getattr(handle, kind).remote(decision, who, comment), timeout=30)
    except Exception as exc:  # noqa: BLE001 - the controller's answer, shown as it is
        cause = getattr(exc, "cause", None) or exc
        fail(f"{kind} {decision}: {cause}")
    click.echo(f"decision {full} {'approved' if kind == 'approve' else 'rejected'} by {who}")


def _options(f):
    for opt in reversed([
        click.argument("decision"),
        click.option("--by", default=None, help="Who answers (default: the login name)."),
        click.option("--comment", default="", help="Why (kept in the audit trail)."),
        click.option("--controller", default="raywatch-remediation", show_default=True, help="Remediation controller actor name."),
        click.option("--namespace", default="raywatch", show_default=True, help="Its Ray namespace."),
        click.option("--address", default=None, help=ADDRESS_HELP),
    ]):
        f = opt(f)
    return f


@click.command("approve", short_help="Approve a remediation decision that waits for approval.")
@_options
def approve(decision: str, by: Optional[str], comment: str, controller: str, namespace: str, address: Optional[str]) -> None:
    """Approve a remediation decision waiting for approval (an id or its first characters)."""
    _answer("approve", decision, by, comment, controller, namespace, address)


@click.command("reject", short_help="Reject a remediation decision that waits for approval.")
@_options
def reject(decision: str, by: Optional[str], comment: str, controller: str, namespace: str, address: Optional[str]) -> None:
    """Reject a remediation decision waiting for approval."""
    _answer("reject", decision, by, comment, controller, namespace, address)
