"""``raywatch profile build|show``: reference profiles, what the training data looked like."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click

from raywatch.cli.common import connect, fail
from raywatch.stats.tables import FORMATS

__all__ = ["profile", "offline_options", "start_ray", "kind_map"]


@click.group(short_help="Build or show a reference profile.")
def profile() -> None:
    """Reference profiles: what the training data looked like."""


def kind_map(kinds: Tuple[str, ...]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for k in kinds:
        name, sep, kind = k.partition("=")
        if not sep:
            raise click.BadParameter(f"expected COLUMN=KIND, got {k!r}", param_hint="--kind")
        out[name.strip()] = kind.strip()
    return out


def offline_options(fn: Any) -> Any:
    """``--ray``, ``--address``, ``--blocks``: where the offline commands run."""
    fn = click.option("--blocks", type=click.IntRange(min=1), help="With --ray: re-cut the data into this many blocks "
                      "(default: the blocks Ray Data reads).")(fn)
    fn = click.option("--address", help="With --ray: the Ray cluster (default: $RAY_ADDRESS, a `ray start` cluster of "
                      "this machine, else a new local one).")(fn)
    fn = click.option("--ray", "on_ray", is_flag=True, help="Run on Ray Data: every block summarized where it is "
                      "read, the parts tree-merged (pip install 'raywatch[data]').")(fn)
    return fn


def start_ray(on_ray: bool, address: Optional[str]) -> str:
    """The engine of an offline command: ``"ray"`` (connected: to ``address`` or $RAY_ADDRESS
    within the usual timeout, else a local cluster) or ``"local"``."""
    if not on_ray:
        return "local"
    from raywatch.offline.ray_data import connect as connect_data

    try:
        if address or os.environ.get("RAY_ADDRESS"):
            connect(address)
        connect_data(address)
    except ImportError as exc:
        fail(str(exc))
    return "ray"


def _single_file(data: str) -> bool:
    """Whether ``data`` is one local file that :func:`~raywatch.stats.tables.read_table` reads
    (the path ``raywatch profile build`` always took without --ray)."""
    from raywatch.offline.sources import is_uri

    return not is_uri(data) and os.path.isfile(data) and not glob.has_magic(data)


@profile.command("build")
@click.argument("data")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Profile file to write (default: DATA with .profile; "
              "required for a directory, glob or URI).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), help="Input format (default: from the extension).")
@click.option("--kind", "kinds", multiple=True, metavar="COLUMN=KIND", help="Override an inferred kind: numerical, categorical or boolean. Repeatable.")
@click.option("--columns", help="Comma-separated columns to keep (default: all).")
@click.option("--bins", default=100, show_default=True, help="Quantile bins per numerical column.")
@click.option("--sample-size", default=10_000, show_default=True, help="Bounded reference sample kept for exact tests.")
@click.option("--max-categories", default=50, show_default=True, help="Top labels kept per categorical column.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample (reproducible profiles).")
@offline_options
def profile_build(data: str, output: Optional[str], fmt: Optional[str], kinds: Tuple[str, ...], columns: Optional[str], bins: int,
                  sample_size: int, max_categories: int, seed: int, on_ray: bool, address: Optional[str],
                  blocks: Optional[int]) -> None:
    """Build a reference profile from DATA: a CSV, NPZ or Parquet file, or a directory, glob
    (quoted) or URI (s3://, gs://, file://…) of Parquet or CSV files. With --ray it runs on
    Ray Data and gives the same profile (edges, categories, counts; moments to rounding)."""
    from raywatch.stats.profile import Profile
    from raywatch.stats.tables import read_table

    overrides = kind_map(kinds)
    keep = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    single = _single_file(data) and not on_ray
    if output is None and not _single_file(data):
        fail(f"give the profile file to write (-o FILE): {data} is not a single file")
    if not single and fmt == "npz":
        fail("NPZ is read from a single file without --ray; directories, globs, URIs and --ray read Parquet or CSV")
    try:
        if single:
            table = read_table(data, fmt)
            if keep:
                names = table.column_names if hasattr(table, "column_names") else list(table)
                missing = [c for c in keep if c not in names]
                if missing:
                    raise ValueError(f"--columns: {', '.join(missing)} not in {data} (it has {', '.join(names)})")
                table = table.select(keep) if hasattr(table, "select") else {c: table[c] for c in keep}
            prof = Profile.fit(table, overrides or None, bins=bins, sample_size=sample_size, max_categories=max_categories, seed=seed)
        else:
            from raywatch.offline.engine import fit_profile
            from raywatch.offline.sources import resolve

            source = resolve(data, fmt, overrides)
            engine = start_ray(on_ray, address)
            prof = fit_profile(source, overrides or None, columns=keep, bins=bins, sample_size=sample_size,
                               max_categories=max_categories, seed=seed, engine=engine, address=address, blocks=blocks)
    except ValueError as exc:
        fail(f"cannot build a profile: {exc}")
    out = Path(output) if output else Path(data).with_suffix(".profile")
    prof.save(out)
    click.echo(f"profile written to {out}: {prof.reference.rows:,} rows, {len(prof.columns)} columns")
    if not single:
        where = f"on Ray Data in {prof.meta.get('fitted_in_blocks', 0):,} blocks" if on_ray else "in this process"
        click.echo(f"  read {source.describe()}, fitted {where}")
    for name, kind in prof.kinds.items():
        click.echo(f"  {name:<28} {kind}")


@profile.command("show")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def profile_show(path: str) -> None:
    """Describe a saved profile: columns, kinds, bins or categories."""
    from raywatch.stats.codec import FormatError
    from raywatch.stats.profile import Profile

    try:
        prof = Profile.load(path)
    except FormatError as exc:
        fail(str(exc))
    click.echo(f"{path}: {prof!r}")
    for key, value in sorted(prof.meta.items()):
        click.echo(f"  {key}: {value}")
    for name, kind in prof.kinds.items():
        if kind == "numerical":
            edges = prof.edges(name)
            finite = [e for e in edges if e == e and abs(e) != float("inf")]
            detail = f"{len(edges) - 1} bins" + (f", {finite[0]:.4g} … {finite[-1]:.4g}" if finite else "")
        else:
            cats = prof.categories(name)
            detail = f"{len(cats)} categories: " + ", ".join(map(str, cats[:8])) + (" …" if len(cats) > 8 else "")
        click.echo(f"  {name:<28} {kind:<12} {detail}")
