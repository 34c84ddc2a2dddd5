"""``detect_drift``: compare a window with its reference profile.

For every column of the profile: pick the method (the default rule below, or the
configuration's override), compute its statistic from the two summaries, correct the
p-values across columns, and flag drift when

* p-value methods (``ks``, ``chisquare``, ``ztest``): the corrected p-value is below the
  threshold (α, default 0.05) **and** the effect size reaches its floor (Wasserstein
  distance ≥ 0.1 reference std for numerical columns, total variation ≥ 0.05 for
  categorical ones);
* distance methods: the distance reaches the threshold.

Default rule (by kind and size): numerical → ``ks``, exact from the samples when the
reference and the window fit entirely in their bounded samples (≤ 10,000 and ≤ 100 rows
by default), otherwise on the profile's 100 quantile bins (statistic within one bin's mass
of the raw value, p-value conservative); boolean → ``ztest``; categorical → ``ztest``
when the reference has exactly two labels, ``chisquare`` otherwise. Columns with fewer
than ``min_rows`` usable values in the window are reported but not tested.

Exact when the data is at hand: given raw columns of at most ``exact_max_rows`` rows
(10,000 by default), the window is summarized with a sample that holds every value, so a
numerical column whose reference also fits in the profile's sample is tested exactly: its
KS statistic and p-value are scipy's ``ks_2samp``'s. Every column says what its figures are
(``ColumnDrift.figures``: exact, bound, approximate or binned).

The profile's extensions (estimated performance, correlations, PCA reconstruction,
embeddings, outliers) are tested too when the window carries their sections
(:mod:`raywatch.drift.extensions`); their results are in ``report.extensions``, and the
outlier shares join each column's quality figures.

Why an effect-size floor: a KS test on 1,000,000 rows flags a 0.01 σ shift that no model
notices. The floor keeps "statistically significant" from meaning "alert" when the change
is too small to matter, while leaving the p-value (and its false-alarm guarantee) to
decide for small windows.

The dataset drifts when the share of drifted columns among the tested ones reaches
``drift_share`` (default 0.5).

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> rng = np.random.default_rng(1)
>>> profile = Profile.fit({"a": rng.normal(size=20_000), "b": rng.normal(size=20_000)}, seed=1)
>>> report = detect_drift(profile, {"a": rng.normal(0.5, 1, 5000), "b": rng.normal(size=5000)})
>>> report.drifted_columns, report.dataset_drift, report.columns["a"].method
(['a'], True, 'ks')
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from raywatch import series
from raywatch.config import ColumnDriftConfig, DriftConfig, parse_config
from raywatch.drift.batched import plan_for, binned_tests
from raywatch.drift.correction import adjust
from raywatch.drift.extensions import run_extension_tests
from raywatch.drift.methods import METHODS, ColumnPair, effect_size
from raywatch.drift.outliers import OutlierResults
from raywatch.drift.quality import assess
from raywatch.drift.report import ColumnDrift, DriftReport
from raywatch.stats.profile import Profile
from raywatch.stats.summary import INT_FIELDS, WindowSummary

__all__ = ["detect_drift", "attach_extensions", "EXACT_MAX_ROWS"]

log = logging.getLogger("raywatch.drift.detect")


def _config(config: Union[DriftConfig, Mapping[str, Any], None]) -> DriftConfig:
    if config is None:  # one default object: the extension tests' settings are made once per config object
        return _DEFAULT_CONFIG
    if isinstance(config, DriftConfig):
        return config
    return parse_config(config, DriftConfig, "drift config")


def _validate(profile: Profile, cfg: DriftConfig) -> None:
    unknown = sorted(set(cfg.columns) - set(profile.specs))
    if unknown:
        raise ValueError(
            f"drift config names columns the profile does not have: {', '.join(unknown)} "
            f"(profile columns: {', '.join(profile.columns)})"
        )
    for kind_key, method in (("numerical_method", cfg.numerical_method), ("categorical_method", cfg.categorical_method)):
        if method is not None:
            kinds = {"numerical"} if kind_key == "numerical_method" else {"categorical"}
            if not kinds & METHODS[method].kinds:
                raise ValueError(f"drift config {kind_key}: {method} does not apply to {kinds.pop()} columns")
    for name, col in cfg.columns.items():
        kind = profile.specs[name].kind
        if col.method is not None and kind not in METHODS[col.method].kinds:
            allowed = sorted(m for m, spec in METHODS.items() if kind in spec.kinds)
            raise ValueError(
                f"drift config columns.{name}.method: {col.method} does not apply to a {kind} column "
                f"(use one of {', '.join(allowed)})"
            )


EXACT_MAX_ROWS = 10_000
_COUNT = INT_FIELDS.index("count")
_COLUMN_DEFAULTS = ColumnDriftConfig()
_DEFAULT_CONFIG = DriftConfig()  # read only


def _figures(kind: str, method: str, exact: bool) -> str:
    if kind != "numerical":
        return "exact"  # tests of exact category counts
    if exact:
        return "exact"
    return {"ks": "bound", "wasserstein": "approximate"}.get(method, "binned")


def detect_drift(
    profile: Profile,
    current: Any,
    config: Union[DriftConfig, Mapping[str, Any], None] = None,
    *,
    exact_max_rows: Optional[int] = None,
    options: Optional[Mapping[str, Mapping[str, Any]]] = None,
    extensions: bool = True,
) -> DriftReport:
    """Test every column of ``current`` against ``profile``.

    Parameters
    ----------
    profile
        The reference :class:`~raywatch.stats.profile.Profile`.
    current
        A :class:`~raywatch.stats.summary.WindowSummary` made with this profile, or raw
        columns (anything ``profile.summarize`` accepts).
    config
        A :class:`~raywatch.config.DriftConfig` (or a dict of its fields).
    exact_max_rows
        Raw columns of at most this many rows are held whole (exact tests); default the
        config's ``exact_max_rows`` when it has one, else 10,000.
    options
        Parameters of the extension tests by option key (``{"correlation": {"min_change":
        0.2}}``), over the config's (see :mod:`raywatch.drift.extensions`).
    extensions
        False: the columns alone; :func:`attach_extensions` runs the profile's extension tests
        on the report later (the stats actor runs every model's back to back).
    """
    if not isinstance(profile, Profile):
        raise TypeError(f"detect_drift needs a Profile first, got {type(profile).__name__}")
    cfg = _config(config)
    _validate(profile, cfg)
    if isinstance(current, WindowSummary):
        summary = current
    else:
        limit = exact_max_rows if exact_max_rows is not None else getattr(cfg, "exact_max_rows", EXACT_MAX_ROWS)
        rows = _rows(current)
        whole = rows is not None and rows <= int(limit)
        summary = profile.summarize(current, sample_size=max(rows, profile.window_sample_size) if whole else None)
    if summary.fingerprint != profile.fingerprint:
        raise ValueError(
            "the window summary was made against a different profile "
            f"(summary {summary.fingerprint}, profile {profile.fingerprint}); summarize with this profile"
        )
    reference = profile.reference
    plan = plan_for(profile)
    ref_count = reference.ints[:, _COUNT].tolist()
    cur_count = summary.ints[:, _COUNT].tolist()
    ref_sample = [len(v) for v, _ in reference.samples]
    cur_sample = [len(v) for v, _ in summary.samples]
    columns: Dict[str, Optional[ColumnDrift]] = {}
    batched: List[tuple] = []  # binned KS columns, tested together (raywatch.drift.batched)
    for i, (name, spec) in enumerate(profile.specs.items()):
        col_cfg = cfg.columns.get(name) or _COLUMN_DEFAULTS
        if spec.kind == "numerical":
            method = col_cfg.method or cfg.numerical_method or "ks"  # default_method's rule
            floor = cfg.min_effect_numerical
        else:
            method = col_cfg.method or cfg.categorical_method or plan.default_methods[i]
            floor = cfg.min_effect_categorical
            if method not in METHODS or spec.kind not in METHODS[method].kinds:
                method = plan.default_methods[i]
        m = METHODS[method]
        if col_cfg.min_effect is not None:
            floor = col_cfg.min_effect
        threshold = col_cfg.threshold or cfg.thresholds.get(method) or m.default_threshold or cfg.alpha
        base = dict(
            name=name, kind=spec.kind, method=method, threshold=float(threshold),
            rows_reference=ref_count[i], rows_current=cur_count[i],
            effect_floor=float(floor) if m.p_value else None,
        )
        if not col_cfg.enabled:
            columns[name] = ColumnDrift(statistic=None, p_value=None, p_value_adjusted=None, drifted=False,
                                        tested=False, note="disabled in the drift config", **base)
            continue
        if cur_count[i] < cfg.min_rows or ref_count[i] == 0:
            why = (
                f"{cur_count[i]} usable values in the window, fewer than min_rows={cfg.min_rows}"
                if ref_count[i]
                else "no usable values in the reference"
            )
            columns[name] = ColumnDrift(statistic=None, p_value=None, p_value_adjusted=None, drifted=False,
                                        tested=False, note=why, **base)
            continue
        ref_complete = ref_count[i] == ref_sample[i]
        cur_complete = cur_count[i] == cur_sample[i]
        exact = ref_complete and cur_complete and ref_sample[i] > 0 and cur_sample[i] > 0
        if method == "ks" and not exact and i in plan.where:
            columns[name] = None  # filled in below, in the profile's order
            batched.append((name, i, base))
            continue
        pair = ColumnPair(
            ref=plan.columns[i],
            cur=summary.column(name),
            edges=spec.edges,
            ref_complete=ref_complete,
            cur_complete=cur_complete,
            smoothing=cfg.smoothing,
        )
        res = m.compute(pair)
        effect = effect_size(pair)
        drifted = (not m.p_value) and res.statistic >= threshold
        columns[name] = ColumnDrift(
            statistic=float(res.statistic), p_value=res.p_value, p_value_adjusted=None, drifted=drifted,
            effect_size=float(effect), exact=res.exact, statistic_bounds=res.bounds, note=res.note,
            figures=_figures(spec.kind, method, res.exact), **base,
        )
    if batched:
        res = binned_tests(plan, summary, np.array([i for _, i, _ in batched]))
        for (name, _, base), d_low, d_high, p, effect in zip(batched, res.d_low.tolist(), res.d_high.tolist(),
                                                             res.p_value.tolist(), res.effect.tolist()):
            columns[name] = ColumnDrift(
                statistic=d_low, p_value=p, p_value_adjusted=None, drifted=False, effect_size=effect, exact=False,
                statistic_bounds=(d_low, d_high), note="", figures="bound", **base,
            )
    pending = [name for name, c in columns.items() if c.tested and METHODS[c.method].p_value]
    if pending:
        adjusted = adjust([columns[name].p_value for name in pending], cfg.correction)
        for name, p_adj in zip(pending, adjusted.tolist()):
            c = columns[name]
            c.p_value_adjusted = float(p_adj)
            c.drifted = bool(p_adj < c.threshold and (c.effect_size or 0.0) >= (c.effect_floor or 0.0))
    tested = [c for c in columns.values() if c.tested]
    drifted = [c for c in tested if c.drifted]
    share = len(drifted) / len(tested) if tested else 0.0
    notes = []
    if summary.rows == 0:
        notes.append("empty window: nothing to test")
    elif not tested:
        notes.append(f"no column had min_rows={cfg.min_rows} usable values: nothing tested")
    if drifted:
        log.debug("drift in %d of %d columns: %s", len(drifted), len(tested), ", ".join(c.name for c in drifted))
    quality = assess(profile, summary, cfg.quality_tolerance, cfg.quality_alpha)
    report = DriftReport(
        columns=columns,
        quality=quality,
        dataset_drift=bool(tested) and share >= cfg.drift_share,
        drift_share=share,
        drift_share_threshold=cfg.drift_share,
        correction=cfg.correction,
        alpha=cfg.alpha,
        rows_reference=reference.rows,
        rows_current=summary.rows,
        unknown_columns=sorted(summary.unknown_columns),
        notes=notes,
    )
    if extensions:
        attach_extensions(report, profile, summary, cfg, options)
    return report


def attach_extensions(report: DriftReport, profile: Profile, summary: WindowSummary,
                      config: Union[DriftConfig, Mapping[str, Any], None] = None,
                      options: Optional[Mapping[str, Mapping[str, Any]]] = None, *,
                      quality: bool = True) -> DriftReport:
    """Run the profile's extension tests on ``summary`` into ``report`` (a
    :func:`detect_drift` report of it made with ``extensions=False``): ``report.extensions``,
    and the outlier shares into its columns' quality figures (``quality=False``: not there,
    only in ``report.extensions``; the stats actor's rolling view puts them in its quality
    entries when it is read). Returns ``report``."""
    if not profile.extensions:
        return report
    results = run_extension_tests(profile, summary, _config(config), options)
    report.extensions = results
    if not quality:
        return report
    quality_of = report.quality
    for result in results.values():
        if type(result) is OutlierResults:  # outlier shares join the columns' quality figures
            for col, outlier_share, reference_share, issue in result.shares():
                q = quality_of.get(col)
                if q is not None:
                    q.outlier_share = outlier_share
                    q.outlier_share_reference = reference_share
                    if issue:
                        q.issues.append(series.OUTLIER_SHARE.name)
    return report


def _rows(data: Any) -> Optional[int]:
    """The number of rows of raw input, without converting it (None when unknown)."""
    try:
        if isinstance(data, Mapping):
            return max((len(v) for v in data.values()), default=0)
        if isinstance(data, (list, tuple)) or hasattr(data, "shape") or hasattr(data, "num_rows"):
            return int(getattr(data, "num_rows", None) or len(data))
    except TypeError:
        return None
    return None
