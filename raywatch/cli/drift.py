"""``raywatch drift REFERENCE CURRENT``: the drift of a data set against a reference, offline.

REFERENCE is a profile file (``raywatch profile build``) or data to fit one from; CURRENT is
data: a Parquet or CSV file, a directory, a quoted glob or a URI. The figures and verdicts
are those of a stats actor's window of the same rows (``raywatch.drift.detect_drift``);
with ``--ray`` every block is summarized on Ray Data where it is read and the summaries are
tree-merged (the same counts, hence the same verdicts, as without).
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Optional, Tuple

import click

from raywatch.cli.common import CONFIG_HELP, fail, load_monitor_config
from raywatch.cli.profile import kind_map, offline_options, start_ray

__all__ = ["drift"]

_PROFILE_SUFFIXES = (".profile", ".rwprofile")


def _is_profile(path: str) -> bool:
    """Whether REFERENCE names a saved profile rather than data."""
    return os.path.isfile(path) and path.lower().endswith(_PROFILE_SUFFIXES)


def _figure(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if v != 0 and abs(v) < 1e-4:
        return f"{v:.1e}"
    return f"{v:.4f}"


def report_lines(report: Any) -> list:
    """The report as the command prints it: a row per column, quality issues, the verdict."""
    lines = [f"{'column':<24} {'kind':<12} {'method':<14} {'statistic':>10} {'p-value':>10} {'effect':>8}  verdict"]
    for name, c in report.columns.items():
        verdict = "DRIFT" if c.drifted else ("ok" if c.tested else f"not tested: {c.note}")
        lines.append(f"{name:<24} {c.kind:<12} {c.method:<14} {_figure(c.statistic):>10} "
                     f"{_figure(c.p_value_adjusted if c.p_value_adjusted is not None else c.p_value):>10} "
                     f"{_figure(c.effect_size):>8}  {verdict}")
    for name, q in report.quality.items():
        if q.issues:
            lines.append(f"quality: {name}: {', '.join(q.issues)}")
    if report.unknown_columns:
        lines.append(f"columns not in the reference: {', '.join(report.unknown_columns)}")
    drifted = report.drifted_columns
    tested = len(report.tested_columns)
    lines.append(f"dataset drift: {'yes' if report.dataset_drift else 'no'} — {len(drifted)} of {tested} columns drifted"
                 + (f" ({', '.join(drifted)})" if drifted else "")
                 + f"; threshold {report.drift_share_threshold:.0%} of the columns")
    return lines


@click.command(short_help="Offline drift of data files against a reference.")
@click.argument("reference")
@click.argument("current")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "tsv"]), help="Input format (default: from the extensions).")
@click.option("--kind", "kinds", multiple=True, metavar="COLUMN=KIND",
              help="Override an inferred kind when REFERENCE is data. Repeatable.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help=CONFIG_HELP.split(" (")[0] + ": its drift settings (tests, alpha, correction, thresholds).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples (reproducible figures).")
@click.option("--save-profile", type=click.Path(dir_okay=False), help="When REFERENCE is data: also write the profile fitted from it.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--fail-on-drift", is_flag=True, help="Exit 3 when a column drifted (for CI jobs).")
@offline_options
def drift(reference: str, current: str, fmt: Optional[str], kinds: Tuple[str, ...], config_path: Optional[str], seed: int,
          save_profile: Optional[str], as_json: bool, fail_on_drift: bool, on_ray: bool, address: Optional[str],
          blocks: Optional[int]) -> None:
    """The drift of CURRENT against REFERENCE, column by column, and the dataset verdict.

    REFERENCE is a profile file (.profile) or data; CURRENT is data: a Parquet or CSV file,
    a directory, a quoted glob, or a URI (s3://, gs://, file://…)."""
    from raywatch.drift.detect import detect_drift
    from raywatch.offline.engine import fit_profile, summarize
    from raywatch.offline.sources import resolve
    from raywatch.stats.codec import FormatError
    from raywatch.stats.profile import Profile

    overrides = kind_map(kinds)
    config = load_monitor_config(config_path).drift
    started = time.perf_counter()
    try:
        if _is_profile(reference):
            if overrides:
                raise click.BadParameter("a profile's kinds are fixed; --kind is for a REFERENCE given as data",
                                         param_hint="--kind")
            profile = Profile.load(reference)
            ref_text = f"{reference} (profile of {profile.reference.rows:,} rows)" if profile.reference else reference
            ref_source = None
        else:
            ref_source = resolve(reference, fmt, overrides)
            ref_text = ref_source.describe()
        cur_source = resolve(current, fmt, overrides)
        engine = start_ray(on_ray, address)
        if ref_source is not None:
            profile = fit_profile(ref_source, overrides or None, seed=seed, engine=engine, address=address, blocks=blocks)
            if save_profile:
                profile.save(save_profile)
        summary = summarize(cur_source, profile, engine=engine, seed=seed, address=address, blocks=blocks)
        report = detect_drift(profile, summary, config)
    except (ValueError, FormatError) as exc:
        fail(f"cannot check drift: {exc}")
    seconds = time.perf_counter() - started
    where = "on Ray Data" if on_ray else "in this process"
    if as_json:
        click.echo(json.dumps({"reference": ref_text, "current": cur_source.describe(), "engine": engine,
                               "seconds": round(seconds, 3), "report": report.to_dict()}, indent=2))
    else:
        click.echo(f"reference: {ref_text}")
        click.echo(f"current:   {cur_source.describe()}: {summary.rows:,} rows, summarized {where}")
        if ref_source is not None and save_profile:
            click.echo(f"profile of the reference written to {save_profile}")
        for line in report_lines(report):
            click.echo(line)
    if fail_on_drift and report.drifted_columns:
        raise SystemExit(3)
