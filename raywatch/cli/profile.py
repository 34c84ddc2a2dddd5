"""``raywatch profile build|show``: reference profiles, what the training data looked like."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import click

from raywatch.cli.common import fail
from raywatch.stats.tables import FORMATS

__all__ = ["profile"]


@click.group(short_help="Build or show a reference profile.")
def profile() -> None:
    """Reference profiles: what the training data looked like."""


def _kind_map(kinds: Tuple[str, ...]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for k in kinds:
        name, sep, kind = k.partition("=")
        if not sep:
            raise click.BadParameter(f"expected COLUMN=KIND, got {k!r}", param_hint="--kind")
        out[name.strip()] = kind.strip()
    return out


@profile.command("build")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Profile file to write (default: DATA with .profile).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), help="Input format (default: from the extension).")
@click.option("--kind", "kinds", multiple=True, metavar="COLUMN=KIND", help="Override an inferred kind: numerical, categorical or boolean. Repeatable.")
@click.option("--columns", help="Comma-separated columns to keep (default: all).")
@click.option("--bins", default=100, show_default=True, help="Quantile bins per numerical column.")
@click.option("--sample-size", default=10_000, show_default=True, help="Bounded reference sample kept for exact tests.")
@click.option("--max-categories", default=50, show_default=True, help="Top labels kept per categorical column.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample (reproducible profiles).")
def profile_build(data: str, output: Optional[str], fmt: Optional[str], kinds: Tuple[str, ...], columns: Optional[str], bins: int,
                  sample_size: int, max_categories: int, seed: int) -> None:
    """Build a reference profile from a CSV, NPZ or Parquet file."""
    from raywatch.stats.profile import Profile
    from raywatch.stats.tables import read_table

    kind_map = _kind_map(kinds)
    try:
        table = read_table(data, fmt)
        if columns:
            keep = [c.strip() for c in columns.split(",") if c.strip()]
            names = table.column_names if hasattr(table, "column_names") else list(table)
            missing = [c for c in keep if c not in names]
            if missing:
                raise ValueError(f"--columns: {', '.join(missing)} not in {data} (it has {', '.join(names)})")
            table = table.select(keep) if hasattr(table, "select") else {c: table[c] for c in keep}
        prof = Profile.fit(table, kind_map or None, bins=bins, sample_size=sample_size, max_categories=max_categories, seed=seed)
    except ValueError as exc:
        fail(f"cannot build a profile: {exc}")
    out = Path(output) if output else Path(data).with_suffix(".profile")
    prof.save(out)
    click.echo(f"profile written to {out}: {prof.reference.rows:,} rows, {len(prof.columns)} columns")
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
