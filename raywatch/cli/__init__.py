"""The ``raywatch`` command: the group, and one module per command.

::

    raywatch demo                      # drift caught and alerted, report written (under 3 minutes)
    raywatch status [--model KEY]      # what the stats actor sees now
    raywatch report -o report.html     # the HTML report, from a running actor or its SQLite file
    raywatch profile build data.csv -o fraud.profile
    raywatch drift fraud.profile s3://bucket/scored/ --ray   # offline drift, on Ray Data
    raywatch export prometheus-rules --config configs/monitor.yaml
    raywatch check-config configs/serve-fraud.yaml configs/monitor.yaml
    raywatch deploy configs/serve-fraud.yaml
    raywatch reset --model fraud/FraudModel  # forget a model's state and history
    raywatch replay-dead-letters dead-letters.jsonl --config configs/monitor.yaml
    raywatch demo --remediate           # drift hurts accuracy; retrain, validate, shadow, canary, promote
    raywatch audit --model fraud --since 30d   # the compliance record of remediation (JSON + HTML)
    raywatch approve <id>               # (or raywatch reject <id>) a remediation decision that waits
    raywatch shards add --config configs/monitor.yaml   # one more stats actor shard, at run time

The CLI prints; the library only logs. What the commands share is in
:mod:`raywatch.cli.common`; the library code they call lives in the packages.
"""

from __future__ import annotations

import logging

import click

from raywatch.cli import approve as approve_cmd
from raywatch.cli import audit as audit_cmd
from raywatch.cli import check_config, demo, deploy, drift, export, profile, replay_dead_letters, report, reset, shards, status
from raywatch.cli.common import quiet_ray_notices

__all__ = ["main"]


class _Group(click.Group):
    """The command list shows each command's summary whole (click cuts it at 45 characters)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=200)) for name, cmd in
                ((n, self.get_command(ctx, n)) for n in self.list_commands(ctx)) if cmd is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="raywatch", prog_name="raywatch")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """raywatch — sidecar model monitoring for Ray Serve.

    Start with `raywatch demo`: a local Ray cluster, a monitored fraud model, traffic with an
    injected data drift and latency regression, alerts, and an HTML report.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_ray_notices()  # Ray 2.60's "Token authentication is enabled…" on every connection


for _command in (check_config.check_config, demo.demo, deploy.deploy, drift.drift, export.export, profile.profile,
                 replay_dead_letters.replay_dead_letters, report.report, reset.reset, shards.shards, status.status,
                 audit_cmd.audit, approve_cmd.approve, approve_cmd.reject):
    main.add_command(_command)
del _command
