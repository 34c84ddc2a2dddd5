"""``raywatch demo``: the whole product on one machine, in under three minutes.

1. starts a local Ray cluster and a tiny local alert receiver that speaks Alertmanager's v2
   API (and its webhook format), the alerts' destination;
2. deploys the fraud model from ``configs/serve-demo.yaml`` — monitoring switched on in the
   YAML; an ``alertmanager`` sink pointing at the receiver, the SQLite file and the /metrics
   port filled in at run time;
3. sends transactions over HTTP at a steady rate, with ground truth sent back as feedback;
4. at announced times injects a data drift (``amount`` ×3, ``distance_km`` ×5) and then a
   latency regression (a rollout of the same YAML with ``simulated_latency_ms: 400`` in the
   deployment's ``user_config``: reconfigured in place, no restart);
5. shows a progress bar and live status (requests, p95, drift per feature, firing alerts),
   prints each alert notification as the receiver gets it and appends it to ``alerts.jsonl``;
6. writes ``report.html`` and ``summary.json``, shuts everything down and exits 0.

``raywatch demo --remediate`` closes the loop instead (:mod:`~raywatch.cli.demo.remediate`):
drift that hurts accuracy, then a retrain on the logged, labelled traffic, validation,
shadow, canary and promotion, with the timeline, the accuracy recovering and zero failed
requests.

The parts: :mod:`~raywatch.cli.demo.run` (the run), :mod:`~raywatch.cli.demo.receiver` (the
alert receiver), :mod:`~raywatch.cli.demo.traffic` (the load) and
:mod:`~raywatch.cli.demo.display` (status lines and the closing summary). Printing is the
CLI's job, so these modules use ``click.echo``.
"""

from __future__ import annotations

import sys
from typing import Optional

import click

from raywatch.cli.demo.traffic import MIN_DURATION

__all__ = ["demo"]


def _duration(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value < MIN_DURATION:
        raise click.BadParameter(
            f"at least {MIN_DURATION:g} seconds, got {value:g}: the drift is injected at 30 % of the duration and the "
            "latency regression at 50 %, and each needs a few 10 s windows to be detected")
    return value


@click.command(short_help="Watch raywatch catch a drift and a latency regression.")
@click.option("--duration", default=100.0, show_default=True, callback=_duration,
              help=f"Seconds of traffic, at least {MIN_DURATION:g} (the whole demo takes about a minute more).")
@click.option("--rps", default=40.0, show_default=True, help="Requests per second sent to the model.")
@click.option("--out", "out_dir", default="raywatch-demo", show_default=True, type=click.Path(file_okay=False), help="Directory for the report, alerts.jsonl and the SQLite file.")
@click.option("--config", "serve_config", type=click.Path(exists=True, dir_okay=False), help="Serve config YAML to deploy (default: configs/serve-demo.yaml, app `fraud`, deployment `FraudModel`; with --remediate configs/serve-remediation-demo.yaml, app `shop`, deployment `Scorer`).")
@click.option("--seed", default=7, show_default=True, help="Seed of the traffic generator.")
@click.option("--no-progress", is_flag=True, help="Plain log lines instead of a progress bar.")
@click.option("--remediate", is_flag=True,
              help="Close the loop instead: drift hurts accuracy; retrain, validate, shadow, canary, promote (under 3 minutes).")
def demo(duration: float, rps: float, out_dir: str, serve_config: Optional[str], seed: int, no_progress: bool,
         remediate: bool) -> None:
    """Watch raywatch catch a data drift and a latency regression, end to end.

    Starts a local Ray, deploys the fraud model from its serve config YAML with raywatch
    switched on, sends traffic, injects a drift on `amount` and `distance_km` and then a
    latency regression at announced times, shows live status, writes alerts to the console
    and to OUT/alerts.jsonl, writes OUT/report.html, shuts everything down.
    """
    if remediate:
        from raywatch.cli.demo.remediate import run_remediation_demo

        out = out_dir if click.get_current_context().get_parameter_source("out_dir").name != "DEFAULT" \
            else "raywatch-demo-remediate"
        sys.exit(run_remediation_demo(rps=rps, out_dir=out, seed=seed, serve_config=serve_config,
                                      progress=not no_progress))
    from raywatch.cli.demo.run import run_demo

    code = run_demo(duration=duration, rps=rps, out_dir=out_dir, serve_config=serve_config, seed=seed, progress=not no_progress)
    sys.exit(code)
