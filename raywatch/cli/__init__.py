"""The ``raywatch`` command.

::

    raywatch demo                      # drift caught and alerted, report written (under 3 minutes)
    raywatch status [--model KEY]      # what the stats actor sees now
    raywatch report -o report.html     # the HTML report, from a running actor or its SQLite file
    raywatch profile build data.csv -o fraud.profile
    raywatch export prometheus-rules --config configs/monitor.yaml
    raywatch check-config configs/serve-fraud.yaml configs/monitor.yaml
    raywatch deploy configs/serve-fraud.yaml
    raywatch replay-dead-letters dead-letters.jsonl --config configs/monitor.yaml

The CLI prints; the library only logs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import click

from raywatch.config import ConfigError, MonitorConfig, load_config, parse_config, parse_duration

__all__ = ["main"]

log = logging.getLogger("raywatch.cli")


# ----------------------------------------------------------------------------- helpers


def _fail(message: str, code: int = 1) -> None:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


def _config_error(err: ConfigError) -> None:
    click.secho("configuration error:", fg="red", bold=True, err=True)
    for line in err.problems:
        click.secho(f"  {line}", fg="red", err=True)
    sys.exit(2)


def _load_monitor_config(path: Optional[str]) -> MonitorConfig:
    if path is None:
        return MonitorConfig()
    try:
        return load_config(path)
    except ConfigError as err:
        _config_error(err)
        raise  # unreachable


def _connect(address: Optional[str]) -> Any:
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or "auto"
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, namespace="raywatch")
        except ConnectionError as exc:
            _fail(f"cannot connect to a Ray cluster at {address!r}: {exc}\n"
                  "Start one (`ray start --head`) or pass --address; for a report without Ray use --sqlite.")
    return ray


def _fmt(v: Any, unit: str = "") -> str:
    from raywatch.report.svg import format_value

    return format_value(v if isinstance(v, (int, float)) and not isinstance(v, bool) else None, unit)


def _since(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        return time.time() - parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="raywatch", prog_name="raywatch")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """raywatch — sidecar model monitoring for Ray Serve.

    Start with `raywatch demo`: a local Ray cluster, a monitored fraud model, traffic with an
    injected data drift and latency regression, alerts, and an HTML report.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ----------------------------------------------------------------------------- status


def status_lines(st: Mapping[str, Any]) -> List[str]:
    """Human-readable lines for ``raywatch.status()``'s answer."""
    lines: List[str] = []
    models = st.get("models") or {}
    if not models:
        return ["no model has reported to the stats actor yet"]
    for key, m in models.items():
        roll = m.get("rolling") or {}
        totals = m.get("totals") or {}
        lines.append(click.style(key, bold=True) + "  " + " ".join(f"{k}={v}" for k, v in (m.get("labels") or {}).items() if v))
        lines.append(
            f"  requests {totals.get('requests', roll.get('requests', 0)):,}  "
            f"throughput {_fmt(roll.get('throughput_rps'))}/s  errors {_fmt((roll.get('error_rate') or 0) * 100, '%')}  "
            f"latency p50 {_fmt(roll.get('latency_p50_seconds'), 's')}  p95 {_fmt(roll.get('latency_p95_seconds'), 's')}  "
            f"p99 {_fmt(roll.get('latency_p99_seconds'), 's')}  replicas {len(m.get('replicas') or {})}"
        )
        drift = (m.get("drift") or {}).get("columns") or {}
        if drift:
            parts = []
            for f, d in drift.items():
                p = d.get("p_value")
                mark = click.style("DRIFT", fg="red", bold=True) if d.get("drifted") else "ok"
                parts.append(f"{f} {mark}" + (f" (p={p:.2g})" if isinstance(p, (int, float)) else ""))
            lines.append("  drift: " + ", ".join(parts))
        elif not m.get("profile"):
            lines.append("  drift: no reference profile")
        perf = {k: v for k, v in (m.get("performance") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if perf:
            lines.append("  performance: " + ", ".join(f"{k} {_fmt(v)}" for k, v in perf.items()))
        res = m.get("resources") or {}
        if res:
            cpu, rss = res.get("cpu_percent"), res.get("rss_bytes")
            lines.append(f"  resources: cpu {_fmt(cpu, '%')}  rss {_fmt(rss, 'B')}" + (f"  gpu {res.get('gpu_status')}" if res.get("gpu_status") else ""))
        firing = [a for a in (m.get("alerts") or []) if str(a.get("state", "firing")) == "firing"]
        if firing:
            for a in firing:
                lab = a.get("labels") or {}
                lines.append(
                    "  " + click.style("FIRING", fg="red", bold=True) + f" {lab.get('alertname', a.get('alertname', '?'))}"
                    f" [{lab.get('severity', a.get('severity', ''))}]" + (f" feature={lab['feature']}" if lab.get("feature") else "")
                    + (f" — {(a.get('annotations') or {}).get('summary')}" if (a.get("annotations") or {}).get("summary") else "")
                )
        else:
            lines.append("  alerts: none firing")
    return lines


@main.command()
@click.option("--model", help="A model key (app/deployment) or model name; all models by default.")
@click.option("--address", help="Ray cluster address (default: $RAY_ADDRESS or auto).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="raywatch YAML (actor name, namespace, shards).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
def status(model: Optional[str], address: Optional[str], config_path: Optional[str], as_json: bool) -> None:
    """What the stats actor sees now: traffic, latency, drift, performance, alerts."""
    cfg = _load_monitor_config(config_path) if config_path else None
    _connect(address)
    from raywatch.actor.api import status as get_status

    st = get_status(model, config=cfg)
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
        return
    if not st.get("actors"):
        _fail("no raywatch stats actor is running on this cluster (is a monitored deployment up?)")
    for line in status_lines(st):
        click.echo(line)


# ----------------------------------------------------------------------------- report


def history_from_sqlite(path: str, model: Optional[str] = None, since: Optional[float] = None, config: Optional[MonitorConfig] = None) -> Dict[str, Any]:
    """The ``history()`` dict from a stats actor's SQLite file, without Ray.

    The file is copied first (SQLite's online backup), so a running actor is not disturbed.
    """
    import sqlite3
    import tempfile

    from raywatch.actor.core import StatsCore
    from raywatch.actor.store import Store

    src_path = os.path.expanduser(path)
    if not os.path.exists(src_path):
        raise FileNotFoundError(src_path)
    with tempfile.TemporaryDirectory(prefix="raywatch-report-") as tmp:
        copy = os.path.join(tmp, "copy.sqlite")
        src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True)
        dst = sqlite3.connect(copy)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        store = Store(copy)
        try:
            if config is None:  # the window settings the actor ran with (they shape the rolling view)
                config = MonitorConfig()
                for _key, (_labels, cfg_dict, _profile) in store.load_models().items():
                    try:
                        config = parse_config(cfg_dict or {})
                        break
                    except ConfigError:
                        continue
            core = StatsCore(config, store)
            core.recover()
            ends = [float(w["end"]) for w in store.windows(model, since, 100_000) if w.get("end") is not None]
            if not ends:
                return core.history(model, since)
            # "current" distributions are the rolling view at the end of the stored history, not
            # at the time the report is made (the cluster may be long gone)
            import raywatch.actor.core as core_module

            real_time = core_module.time
            core_module.time = _FrozenClock(max(ends) + 1e-3, real_time)
            try:
                return core.history(model, since)
            finally:
                core_module.time = real_time
        finally:
            store.close()


class _FrozenClock:
    """The ``time`` module, except that ``time()`` returns a fixed instant."""

    def __init__(self, at: float, module: Any):
        self._at, self._module = at, module

    def time(self) -> float:
        return self._at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


@main.command()
@click.option("-o", "--output", default="raywatch-report.html", show_default=True, type=click.Path(dir_okay=False), help="Where to write the HTML file.")
@click.option("--model", help="Only this model key (app/deployment).")
@click.option("--since", help="Only the last DURATION of history (e.g. 30m, 6h, 2d).")
@click.option("--sqlite", "sqlite_path", type=click.Path(dir_okay=False), help="Read a stats actor's SQLite file instead of asking a running actor.")
@click.option("--address", help="Ray cluster address (default: $RAY_ADDRESS or auto).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="raywatch YAML (actor name, namespace, shards).")
@click.option("--title", default="raywatch report", show_default=True)
def report(output: str, model: Optional[str], since: Optional[str], sqlite_path: Optional[str], address: Optional[str], config_path: Optional[str], title: str) -> None:
    """Write the HTML report (one self-contained offline file) from stored history."""
    from raywatch.report import write_report

    cfg = _load_monitor_config(config_path) if config_path else None
    t_since = _since(since)
    if sqlite_path:
        try:
            hist = history_from_sqlite(sqlite_path, model, t_since, cfg)
        except FileNotFoundError:
            _fail(f"{sqlite_path}: no such file (the stats actor's SQLite file is actor.sqlite_path in the raywatch YAML)")
    else:
        _connect(address)
        from raywatch.actor.api import history

        hist = history(model, t_since, config=cfg)
    path = write_report(hist, output, title=title)
    n_windows = sum(len(m.get("windows") or []) for m in hist.get("models", {}).values())
    click.echo(f"report written to {path} ({len(hist.get('models') or {})} model(s), {n_windows} window(s), {len(hist.get('alerts') or [])} alert event(s))")


# ----------------------------------------------------------------------------- profile


@main.group()
def profile() -> None:
    """Reference profiles: what the training data looked like."""




def read_table(path: str, fmt: Optional[str] = None) -> Dict[str, Any]:
    """Columns from a CSV, NPZ or Parquet file (Parquet needs pyarrow)."""
    import numpy as np

    p = Path(path)
    fmt = (fmt or p.suffix.lstrip(".")).lower()
    if fmt in ("csv", "tsv", "txt"):
        import csv

        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter="\t" if fmt == "tsv" else ",")
            header = next(reader, None)
            if not header:
                raise ValueError(f"{path}: empty CSV file (expected a header row)")
            raw: List[List[str]] = [[] for _ in header]
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path}: line {lineno}: {len(row)} fields, header has {len(header)}")
                for i, v in enumerate(row):
                    raw[i].append(v)
        return {name: _typed_column(vals) for name, vals in zip(header, raw)}
    if fmt == "npz":
        with np.load(p, allow_pickle=False) as data:
            cols = {k: data[k] for k in data.files}
        if len(cols) == 1 and next(iter(cols.values())).ndim == 2:
            (name, arr), = cols.items()
            return {f"{name}_{i}": arr[:, i] for i in range(arr.shape[1])}
        bad = [k for k, v in cols.items() if v.ndim != 1]
        if bad:
            raise ValueError(f"{path}: arrays {bad} are not 1-D (one array per column expected)")
        return cols
    if fmt in ("parquet", "pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError("reading Parquet needs pyarrow (pip install pyarrow)") from None
        return pq.read_table(p)
    raise ValueError(f"{path}: unknown format {fmt!r} (expected csv, tsv, npz or parquet)")


def _typed_column(values: Sequence[str]) -> Any:
    """Numbers as float (empty -> NaN), true/false as bool, anything else as strings (empty -> None)."""
    import numpy as np

    present = [v.strip() for v in values if v.strip() != ""]
    low = {v.lower() for v in present}
    if present and low <= {"true", "false"}:
        if len(present) == len(values):
            return np.array([v.strip().lower() == "true" for v in values])
        return np.array([None if v.strip() == "" else v.strip().lower() == "true" for v in values], dtype=object)
    try:
        return np.array([float(v) if v.strip() != "" else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.array([v if v.strip() != "" else None for v in values], dtype=object)


@profile.command("build")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Profile file to write (default: DATA with .profile).")
@click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "npz", "parquet"]), help="Input format (default: from the extension).")
@click.option("--kind", "kinds", multiple=True, metavar="COLUMN=KIND", help="Override an inferred kind: numerical, categorical or boolean. Repeatable.")
@click.option("--columns", help="Comma-separated columns to keep (default: all).")
@click.option("--bins", default=100, show_default=True, help="Quantile bins per numerical column.")
@click.option("--sample-size", default=10_000, show_default=True, help="Bounded reference sample kept for exact tests.")
@click.option("--max-categories", default=50, show_default=True, help="Top labels kept per categorical column.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample (reproducible profiles).")
def profile_build(data: str, output: Optional[str], fmt: Optional[str], kinds: Tuple[str, ...], columns: Optional[str], bins: int, sample_size: int, max_categories: int, seed: int) -> None:
    """Build a reference profile from a CSV, NPZ or Parquet file."""
    from raywatch.stats.profile import Profile

    kind_map: Dict[str, str] = {}
    for k in kinds:
        name, sep, kind = k.partition("=")
        if not sep:
            raise click.BadParameter(f"expected COLUMN=KIND, got {k!r}", param_hint="--kind")
        kind_map[name.strip()] = kind.strip()
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
        _fail(f"cannot build a profile: {exc}")
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
        _fail(str(exc))
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


# ----------------------------------------------------------------------------- export


_EXPORTS = {
    "prometheus-rules": ("prometheus_rules_yaml", "yaml"),
    "grafana-dashboard": ("grafana_dashboard", "json"),
    "datadog-monitors": ("datadog_monitors", "json"),
    "alertmanager-config": ("alertmanager_config_yaml", "yaml"),
}


def _load_without_secrets(path: str) -> MonitorConfig:
    """Load a raywatch YAML for export: exports never contain secrets, so ``${VAR}``
    references that are not set are filled with a placeholder instead of failing."""
    import re

    names = sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", Path(path).read_text())) - set(os.environ))
    saved = {n: os.environ.get(n) for n in names}
    try:
        for n in names:
            os.environ[n] = f"unset-{n}"
        return _load_monitor_config(path)
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


@main.command("export")
@click.argument("what", type=click.Choice(sorted(_EXPORTS)))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="raywatch YAML whose alert rules to export (default: raywatch's defaults).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file (default: standard output).")
def export_cmd(what: str, config_path: Optional[str], output: Optional[str]) -> None:
    """Prometheus alert rules, a Grafana dashboard, Datadog monitors or an Alertmanager
    config from a raywatch YAML's alert rules and routes."""
    import importlib

    cfg = _load_without_secrets(config_path) if config_path else MonitorConfig()
    if not config_path:
        click.echo("note: no --config given; exporting raywatch's defaults (no alert rules)", err=True)
    func_name, kind = _EXPORTS[what]
    try:
        mod = importlib.import_module("raywatch.alerts.export")
        fn = getattr(mod, func_name)
    except (ImportError, AttributeError):
        _fail(f"this raywatch has no {what} exporter (raywatch.alerts.export.{func_name})")
    result = fn(cfg)
    if not isinstance(result, str):
        if kind == "yaml":
            import yaml

            result = yaml.safe_dump(result, sort_keys=False)
        else:
            result = json.dumps(result, indent=2)
    if output:
        Path(output).write_text(result if result.endswith("\n") else result + "\n")
        click.echo(f"{what} written to {output}")
    else:
        click.echo(result.rstrip("\n"))


# ----------------------------------------------------------------------------- check-config / deploy


def _is_serve_config(path: str) -> bool:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except Exception:
        return False
    return isinstance(data, dict) and "applications" in data


@main.command("check-config")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check_config(paths: Tuple[str, ...]) -> None:
    """Check raywatch YAMLs and serve config YAMLs; errors name the file, field and expectation."""
    from raywatch.serve.app import load_serve_config

    bad = 0
    for path in paths:
        try:
            if _is_serve_config(path):
                _, notes = load_serve_config(path)
                click.echo(click.style("ok", fg="green") + f"  {path} (serve config)" + "".join(f"\n      {n}" for n in notes))
            else:
                cfg = load_config(path)
                click.echo(
                    click.style("ok", fg="green")
                    + f"  {path} (raywatch config: {len(cfg.alerting.rules)} rule(s), {len(cfg.alerting.sinks)} sink(s))"
                )
        except ConfigError as err:
            bad += 1
            click.secho(f"error  {path}", fg="red", bold=True, err=True)
            for line in err.problems:
                click.secho(f"  {line}", fg="red", err=True)
    if bad:
        sys.exit(2)


def deploy_serve_config(path: str, *, patch: Optional[Any] = None, timeout: float = 180.0, echo: Any = None) -> Any:
    """Check a serve config file, deploy it to the connected cluster, wait until it runs.

    ``patch(data: dict)`` may edit the checked config (as a dict) before it is deployed.
    Returns ``serve.status()``. Raises ConfigError (bad file) or RuntimeError (deploy failed,
    with Serve's message, which for raywatch's args names the field path).
    """
    from ray import serve
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    from raywatch.serve.app import load_serve_config

    schema, _ = load_serve_config(path)
    if patch is not None:
        data = schema.model_dump(exclude_unset=True)
        patch(data)
        schema = ServeDeploySchema.model_validate(data)
    client = serve_api.serve_start(http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location)
    client.deploy_apps(schema, _blocking=False)
    names = [a.name for a in schema.applications]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        st = serve.status()
        apps = {n: st.applications.get(n) for n in names}
        states = {n: (str(a.status) if a else "NOT_STARTED") for n, a in apps.items()}
        if states != last and echo:
            echo("  " + ", ".join(f"{n}: {s.split('.')[-1]}" for n, s in states.items()))
        last = states
        failed = {n: a for n, a in apps.items() if a is not None and str(a.status).endswith("DEPLOY_FAILED")}
        if failed:
            raise RuntimeError("\n".join(f"application {n!r} failed to deploy: {a.message}" for n, a in failed.items()))
        if all(s.endswith("RUNNING") for s in states.values()):
            return st
        time.sleep(0.5)
    raise RuntimeError(f"applications {names} not running after {timeout:.0f}s: {last}")


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--address", help="Ray cluster address (default: $RAY_ADDRESS or auto).")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for the applications to run.")
def deploy(config: str, address: Optional[str], timeout: float) -> None:
    """Check a serve config YAML (raywatch's parts included) and deploy it, like `serve deploy`.

    Relative `monitor:`/`profile:` paths are resolved against the YAML file's directory.
    """
    try:
        from raywatch.serve.app import load_serve_config

        load_serve_config(config)
    except ConfigError as err:
        _config_error(err)
    _connect(address)
    try:
        deploy_serve_config(config, timeout=timeout, echo=click.echo)
    except ConfigError as err:
        _config_error(err)
    except RuntimeError as exc:
        _fail(str(exc))
    click.echo(f"deployed {config}")


# ----------------------------------------------------------------------------- dead letters


def _replay(path: str, config_path: str, sinks: Tuple[str, ...], max_attempts: Optional[int]) -> None:
    from raywatch.alerts.deadletter import replay

    cfg = _load_monitor_config(config_path)
    if not Path(path).exists():
        _fail(f"{path}: no such dead-letter file")
    res = replay(path, cfg, sinks=list(sinks) or None, max_attempts=max_attempts)
    click.echo(f"sent {res.sent}, failed again {res.failed}, skipped {res.skipped}; {res.remaining} left in {path}")
    if res.failed:
        sys.exit(1)


@main.command("replay-dead-letters")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False), help="raywatch YAML with the sinks (secrets come from it).")
@click.option("--sink", "sinks", multiple=True, help="Only replay notifications of this sink. Repeatable.")
@click.option("--max-attempts", type=int, help="Attempts per notification (default: the sink's retry setting).")
def replay_dead_letters(path: str, config_path: str, sinks: Tuple[str, ...], max_attempts: Optional[int]) -> None:
    """Send the notifications in a dead-letter file again; only what fails again stays."""
    _replay(path, config_path, sinks, max_attempts)


# ----------------------------------------------------------------------------- demo


@main.command()
@click.option("--duration", default=100.0, show_default=True, help="Seconds of traffic (the whole demo takes about a minute more).")
@click.option("--rps", default=40.0, show_default=True, help="Requests per second sent to the model.")
@click.option("--out", "out_dir", default="raywatch-demo", show_default=True, type=click.Path(file_okay=False), help="Directory for the report, alerts.jsonl and the SQLite file.")
@click.option("--config", "serve_config", type=click.Path(exists=True, dir_okay=False), help="Serve config YAML of the fraud example to deploy (default: configs/serve-demo.yaml; app `fraud`, deployment `FraudModel`).")
@click.option("--seed", default=7, show_default=True, help="Seed of the traffic generator.")
@click.option("--no-progress", is_flag=True, help="Plain log lines instead of a progress bar.")
def demo(duration: float, rps: float, out_dir: str, serve_config: Optional[str], seed: int, no_progress: bool) -> None:
    """Watch raywatch catch a data drift and a latency regression, end to end.

    Starts a local Ray, deploys the fraud model from its serve config YAML with raywatch
    switched on, sends traffic, injects a drift on `amount` and `distance_km` and then a
    latency regression at announced times, shows live status, writes alerts to the console
    and to OUT/alerts.jsonl, writes OUT/report.html, shuts everything down.
    """
    from raywatch.cli.demo import run_demo

    code = run_demo(duration=duration, rps=rps, out_dir=out_dir, serve_config=serve_config, seed=seed, progress=not no_progress)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
