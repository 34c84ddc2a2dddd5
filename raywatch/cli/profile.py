"""``raywatch profile build|show``: reference profiles, what the training data looked like."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click

from raywatch import series
from raywatch.cli.common import config_error, connect, fail, load_monitor_config
from raywatch.stats.tables import FORMATS

__all__ = ["profile", "profile_options", "extension_lines", "offline_options", "start_ray", "kind_map"]


@click.group(short_help="Build or show a reference profile.")
def profile() -> None:
    """Reference profiles: what the training data looked like."""


def _pairs(values: Tuple[str, ...], expected: str, hint: str) -> Dict[str, str]:
    """``NAME=VALUE`` flags as a mapping; a flag without ``=`` is a usage error."""
    out: Dict[str, str] = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep:
            raise click.BadParameter(f"expected {expected}, got {v!r}", param_hint=hint)
        out[name.strip()] = value.strip()
    return out


def kind_map(kinds: Tuple[str, ...]) -> Dict[str, str]:
    """``--kind COLUMN=KIND`` flags as a mapping."""
    return _pairs(kinds, "COLUMN=KIND", "--kind")


def offline_options(fn: Any) -> Any:
    """``--ray``, ``--address``, ``--blocks``: where the offline commands run."""
    fn = click.option("--blocks", type=click.IntRange(min=1), help="With --ray: spread the files over this many "
                      "tasks (default: two per CPU of the cluster, at most one per file or row-group run).")(fn)
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


def _columns(value: Optional[str]) -> Any:
    """``all`` → True; ``a,b`` → ["a", "b"]; None → None (not given)."""
    if value is None:
        return None
    value = value.strip()
    return True if value.lower() == "all" else [c.strip() for c in value.split(",") if c.strip()]


def _scores(values: Tuple[str, ...]) -> Any:
    """``--scores proba`` (binary) or ``--scores 0=p0 --scores 1=p1`` (a column per class)."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    return _pairs(values, "one column, or CLASS=COLUMN for each class", "--scores")


def _vectors(values: Tuple[str, ...]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for v in values:
        name, sep, dims = v.partition("=")
        try:
            out[name.strip()] = {"dims": int(dims)} if sep else {}
        except ValueError:
            raise click.BadParameter(f"expected COLUMN or COLUMN=DIMS, got {v!r}", param_hint="--vector") from None
    return out


def _column_option(data: Dict[str, Any], key: str, columns: Optional[str], name: str, value: Any) -> None:
    """Set ``data[key]`` (``pca``, ``outliers``) from its column flag and its one other flag,
    over what the YAML said: ``True`` (every column) or the options mapping."""
    if columns is None and value is None:
        return
    opts = dict(data[key]) if isinstance(data.get(key), dict) else {}
    cols = _columns(columns) if columns is not None else None
    if isinstance(cols, list):
        opts["columns"] = cols
    if value is not None:
        opts[name] = value
    data[key] = opts or True


def _config_segments(config_path: Optional[str]) -> List[str]:
    """The data columns of the feature segment columns of a raywatch YAML (none without one)."""
    if not config_path:
        return []
    return list(load_monitor_config(config_path).segments.feature_fields(hashed=False).values())


def segment_lines(prof: Any) -> List[str]:
    """``profile build``'s lines about the per-segment references the profile holds."""
    from raywatch.drift.segment_reference import segment_references

    return [f"  segment reference {col}: {len(refs)} value(s) ({', '.join(sorted(refs)[:8])}"
            f"{', …' if len(refs) > 8 else ''})" for col, refs in segment_references(prof).items()]


def profile_options(config_path: Optional[str], *, target: Optional[str], scores: Tuple[str, ...],
                    prediction: Optional[str], positive: Optional[str], threshold: Optional[float],
                    calibration: Optional[str], correlation: Optional[str], pca: Optional[str],
                    pca_variance: Optional[float], outliers: Optional[str], outlier_method: Optional[str],
                    vectors: Tuple[str, ...]) -> Any:
    """The extensions to fit: ``profile_options:`` of the raywatch YAML, then the flags over it."""
    from raywatch.config import ConfigError, ProfileConfig, parse_config

    base = load_monitor_config(config_path).profile_options if config_path else ProfileConfig()
    data = base.model_dump(exclude_defaults=True)
    perf = dict(data.get("performance") or {})
    for key, value in (("target", target), ("scores", _scores(scores)), ("prediction", prediction),
                       ("threshold", threshold), ("calibration", calibration)):
        if value is not None:
            perf[key] = value
    if positive is not None:  # as written, or the number it spells (labels read from CSV are numbers)
        try:
            perf["positive"] = int(positive) if positive.lstrip("-").isdigit() else positive
        except ValueError:
            perf["positive"] = positive
    if perf:
        data["performance"] = perf
    if correlation is not None:
        data["correlation"] = _columns(correlation)
    _column_option(data, "pca", pca, "variance", pca_variance)
    _column_option(data, "outliers", outliers, "method", outlier_method)
    if vectors:
        data["vectors"] = dict(data.get("vectors") or {}, **_vectors(vectors))
    try:
        return parse_config(data, ProfileConfig, "profile options (--config profile_options, then the flags)")
    except ConfigError as err:
        config_error(err)


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
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="A raywatch YAML whose profile_options: say which extensions to fit (the flags below override it).")
@click.option("--target", help="Label column of the reference: fit label-free performance estimation (CBPE); not profiled.")
@click.option("--scores", multiple=True, metavar="COLUMN|CLASS=COLUMN",
              help="With --target: the score column (binary), or CLASS=COLUMN once per class (multiclass).")
@click.option("--prediction", "prediction_column", help="With --target: the predicted-label column (default: from the scores).")
@click.option("--positive", help="With --target: the positive label of a binary model (default 1).")
@click.option("--threshold", type=float, help="With --target and no --prediction: score from which a row is predicted positive (0.5).")
@click.option("--calibration", type=click.Choice(["auto", "identity", "platt", "isotonic"]), help="Score calibration (default auto).")
@click.option("--correlation", metavar="all|COLS", help="Keep co-moments for correlation-change tests: all numerical columns, or a,b,c.")
@click.option("--pca", metavar="all|COLS", help="Fit PCA for multivariate drift by reconstruction error: all numerical columns, or a,b,c.")
@click.option("--pca-variance", type=float, help="Share of standardized variance the kept components explain (0.65).")
@click.option("--outliers", metavar="all|COLS", help="Fit robust outlier fences: all numerical columns, or a,b,c.")
@click.option("--outlier-method", type=click.Choice(["iqr", "mad"]), help="Tukey IQR fences (1.5) or MAD fences (3.5).")
@click.option("--vector", "vectors", multiple=True, metavar="COLUMN[=DIMS]",
              help="A vector column (an embedding: 2-D array in NPZ, list column in Parquet), sketched in DIMS random projections (16). Repeatable.")
@click.option("--segment", "segments", multiple=True, metavar="COLUMN",
              help="Keep each value's own reference for COLUMN (its segments are tested against their own rows, "
                   "not the population's). Repeatable; --config adds its feature segment columns.")
@offline_options
def profile_build(data: str, output: Optional[str], fmt: Optional[str], kinds: Tuple[str, ...], columns: Optional[str], bins: int,
                  sample_size: int, max_categories: int, seed: int, config_path: Optional[str], target: Optional[str],
                  scores: Tuple[str, ...], prediction_column: Optional[str], positive: Optional[str],
                  threshold: Optional[float], calibration: Optional[str], correlation: Optional[str], pca: Optional[str],
                  pca_variance: Optional[float], outliers: Optional[str], outlier_method: Optional[str],
                  vectors: Tuple[str, ...], segments: Tuple[str, ...], on_ray: bool, address: Optional[str],
                  blocks: Optional[int]) -> None:
    """Build a reference profile from DATA: a CSV, NPZ or Parquet file, or a directory, glob
    (quoted) or URI (s3://, gs://, file://…) of Parquet or CSV files. With --ray it runs on
    Ray Data and gives the same profile (edges, categories, counts; moments to rounding).
    From a single file, with the extensions asked for (performance estimation, correlations,
    PCA, outlier fences, vector columns)."""
    from raywatch.stats.profile import Profile
    from raywatch.stats.tables import read_table

    overrides = kind_map(kinds)
    opts = profile_options(config_path, target=target, scores=scores, prediction=prediction_column, positive=positive,
                           threshold=threshold, calibration=calibration, correlation=correlation, pca=pca,
                           pca_variance=pca_variance, outliers=outliers, outlier_method=outlier_method, vectors=vectors)
    fit = opts.fit_options()
    seg_cols = list(dict.fromkeys([*segments, *_config_segments(config_path)]))
    keep = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    from raywatch.offline.sources import is_uri

    if not is_uri(data) and not glob.has_magic(data) and not os.path.exists(data):
        fail(f"{data}: no such file or directory")
    single = _single_file(data) and not on_ray
    if output is None and not _single_file(data):
        fail(f"give the profile file to write (-o FILE): {data} is not a single file")
    if not single:
        if fmt == "npz":
            fail("NPZ is read from a single file without --ray; directories, globs, URIs and --ray read Parquet or CSV")
        asked = [k for k, v in fit.items() if v] + (["segment references"] if segments else [])
        if asked:
            fail(f"the profile's extensions ({', '.join(asked)}) are fitted from a single file without --ray; "
                 "directories, globs, URIs and --ray fit the plain profile")
        if seg_cols:  # from --config: said, not refused (the plain profile is still what was asked)
            click.echo(f"segment references ({', '.join(seg_cols)}) are fitted from a single file; this profile "
                       "has none, so those segments are tested against the population's reference")
        from raywatch.offline.engine import fit_profile
        from raywatch.offline.sources import resolve

        try:
            source = resolve(data, fmt, overrides)
            engine = start_ray(on_ray, address)
            prof = fit_profile(source, overrides or None, columns=keep, bins=bins, sample_size=sample_size,
                               max_categories=max_categories, seed=seed, engine=engine, address=address, blocks=blocks)
        except ValueError as exc:
            fail(f"cannot build a profile: {exc}")
        prof.save(Path(output))
        where = f"on Ray Data in {prof.meta.get('fitted_in_blocks', 0):,} blocks" if on_ray else "in this process"
        click.echo(f"profile written to {output}: {prof.reference.rows:,} rows, {len(prof.columns)} columns")
        click.echo(f"  read {source.describe()}, fitted {where}")
        for name, kind in prof.kinds.items():
            click.echo(f"  {name:<28} {kind}")
        return
    try:
        table = read_table(data, fmt, vectors=list(fit["vectors"]))
        if keep:
            perf = fit["performance"] or {}
            keep += [c for c in [perf.get("target"), *fit["vectors"]] if c and c not in keep]  # needed to fit
            names = table.column_names if hasattr(table, "column_names") else list(table)
            missing = [c for c in keep if c not in names]
            if missing:
                raise ValueError(f"--columns: {', '.join(missing)} not in {data} (it has {', '.join(names)})")
            table = table.select(keep) if hasattr(table, "select") else {c: table[c] for c in keep}
        prof = Profile.fit(table, overrides or None, bins=bins, sample_size=sample_size, max_categories=max_categories, seed=seed,
                           **fit)
        if seg_cols:
            from raywatch.drift.segment_reference import fit_segment_reference

            fit_segment_reference(prof, table, seg_cols, seed=seed)
    except KeyError as exc:
        fail(f"cannot build a profile: --segment: {exc.args[0]}")
    except (ValueError, TypeError) as exc:
        fail(f"cannot build a profile: {exc}")
    out = Path(output) if output else Path(data).with_suffix(".profile")
    prof.save(out)
    click.echo(f"profile written to {out}: {prof.reference.rows:,} rows, {len(prof.columns)} columns")
    for name, kind in prof.kinds.items():
        click.echo(f"  {name:<28} {kind}")
    for line in extension_lines(prof):
        click.echo(line)
    for line in segment_lines(prof):
        click.echo(line)


_KINDS = {"correlation": "co-moments for correlation change", "pca": "PCA for multivariate drift (reconstruction error)",
          "outliers": "robust outlier fences", "vector": "vector sketch (random projections, norms)"}


def extension_lines(prof: Any) -> List[str]:
    """One line per extension of ``prof``: what it holds (calibration quality for CBPE)."""
    lines = []
    for name, ext in prof.extensions.items():
        if ext.kind == "cbpe":
            cals = ", ".join(f"{s}: {c.method}, ECE {c.ece:.3f}" + ("" if c.ok else " (NOT usable)")
                             for s, c in zip(ext.scores, ext.calibrations))
            acc = (ext.reference or {}).get(series.ACCURACY.name)
            lines.append(f"  + {name}: label-free performance estimation, classes {ext.classes}; calibration {cals}"
                         + (f"; reference accuracy {acc:.3f}" if acc is not None else ""))
            lines.extend(f"    warning: {w}" for c in ext.calibrations for w in c.warnings)
        else:
            what = _KINDS.get(ext.kind, ext.kind)
            lines.append(f"  + {name}: {what} ({', '.join(map(str, ext.reads()))})")
    return lines


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
    for line in extension_lines(prof):
        click.echo(line)
    for line in segment_lines(prof):
        click.echo(line)
