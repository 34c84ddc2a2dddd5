"""Issue 13 in the stats actor: the profile's extension tests per window, and false alarms in time.

:func:`detect` runs :func:`~raywatch.drift.detect_drift` with the model's drift settings as the
actor applies them (:func:`drift_settings`): with ``drift.expected_run_time`` the tests' level
becomes ``α = windows.evaluation_interval / expected_run_time`` (the rolling view is tested at
every evaluation, so a test at level α raises a false alarm at most once per ``interval / α``
on average); the correlation and embedding tests take the same α unless set for themselves,
and the PCA reconstruction band the two-sided normal quantile of it.

:func:`extension_fields` turns the report's extensions into a window result's plain data:

* ``estimation`` — the estimated metrics with their bands (CBPE; assumes no concept drift),
  the calibration's quality and warnings;
* ``disagreement`` — per metric, realized (joined feedback of the same windows) minus
  estimated against the band ``sigmas · √(SE(labelled)² + SE(rows)²)``; ``disagree`` is the
  concept-drift signal (``estimation_disagreement``), judged once ``drift.estimation.min_labels``
  labels joined;
* ``correlation``, ``reconstruction``, ``embeddings`` and ``multivariate_drift``;
* each tested column's ``figures`` (exact, bound, approximate, binned) and
  ``statistic_bounds`` (a column's ``outlier_share`` beside the reference's is a quality
  figure: :func:`raywatch.aggregate.evaluate._drift_fields`, series in ``model_series``);
* ``false_alarms`` — the drift tests' level and the least mean time between false alarms.

:func:`extension_series` gives their catalogue series. Everything here reads the model's
profile and config; nothing is stored but the window result.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from scipy.special import ndtri

from raywatch import series as catalogue
from raywatch.aggregate.detectors import NAMES
from raywatch.config import DriftConfig, MonitorConfig
from raywatch.drift import detect_drift
from raywatch.drift.detect import attach_extensions
from raywatch.drift.estimation import disagreement
from raywatch.drift.report import DriftReport
from raywatch.drift.runlength import alpha_for_run_length, describe_run_length, run_length_of_alpha
from raywatch.series import Series
from raywatch.stats.memo import IdentityCache

__all__ = ["drift_settings", "detect", "extension_fields", "extension_series", "readable", "Deferred", "false_alarms", "profile_estimation",
           "detector_calibrations", "history_fields", "finite_number",
           "ESTIMATION", "DISAGREEMENT", "CORRELATION", "RECONSTRUCTION", "EMBEDDINGS", "FALSE_ALARMS"]

# keys of a window result (plain data, not series names)
ESTIMATION, DISAGREEMENT, CORRELATION, RECONSTRUCTION, EMBEDDINGS, FALSE_ALARMS = (
    "estimation", "disagreement", "correlation", "reconstruction", "embeddings", "false_alarms")
_PAIRS_KEPT = 10  # correlation pairs a window result keeps (largest change first)
_OUTLIER_SHARE, _CALIBRATION_ERROR = catalogue.OUTLIER_SHARE.name, catalogue.CALIBRATION_ERROR.name
_LOWER, _UPPER = catalogue.ESTIMATED_PERFORMANCE_LOWER.name, catalogue.ESTIMATED_PERFORMANCE_UPPER.name
_MULTICLASS_DISAGREEMENT = tuple(m.name for m in (catalogue.ACCURACY, catalogue.PRECISION, catalogue.RECALL, catalogue.F1))


def _z(alpha: float) -> float:
    """The two-sided standard normal quantile of level ``alpha``."""
    return float(-ndtri(alpha / 2.0))


def drift_settings(config: MonitorConfig) -> Tuple[DriftConfig, Optional[Dict[str, Dict[str, Any]]]]:
    """The drift config and extension options the stats actor tests with (see the module docstring).

    >>> cfg, options = drift_settings(MonitorConfig(drift={"expected_run_time": "30d"}, windows={"evaluation_interval": 60}))
    >>> cfg.alpha, round(options["reconstruction"]["sigmas"], 2)
    (2.3148148148148147e-05, 4.23)
    """
    drift = config.drift
    if drift.expected_run_time is None:
        return drift, None
    hit = _SETTINGS.get((config, drift))  # once per config: the copy would miss every cache below
    if hit is not None:
        return hit
    alpha = alpha_for_run_length(drift.expected_run_time, config.windows.evaluation_interval)
    options: Dict[str, Dict[str, Any]] = {}
    if drift.reconstruction.sigmas is None:
        options["reconstruction"] = {"sigmas": _z(alpha)}
    return _SETTINGS.put((config, drift), (drift.model_copy(update={"alpha": alpha}), options))


_SETTINGS = IdentityCache(1024)  # (model config, its drift config) → drift_settings


def detect(ms: Any, summary: Any, *, extensions: bool = True) -> DriftReport:
    """``detect_drift`` of ``summary`` against the model's profile, with :func:`drift_settings`
    (``extensions=False``: the columns alone, :func:`attach` later)."""
    cfg, options = drift_settings(ms.config)
    return detect_drift(ms.profile, summary, cfg, options=options, extensions=extensions)


def attach(ms: Any, report: DriftReport, summary: Any, *, quality: bool = True) -> DriftReport:
    """The profile's extension tests of ``summary`` into ``report`` (made by :func:`detect`
    with ``extensions=False``), with :func:`drift_settings`. ``quality=False``: the outlier
    shares stay in the results (a rolling view's, put in its quality entries by :func:`readable`)."""
    cfg, options = drift_settings(ms.config)
    return attach_extensions(report, ms.profile, summary, cfg, options, quality=quality)


def false_alarms(config: MonitorConfig) -> Dict[str, Any]:
    """The drift tests' level per evaluation and what it means in time.

    >>> false_alarms(MonitorConfig())["text"]
    'α 0.05 per evaluation every 10 s: at most one false alarm per 3.3 minutes per test'
    """
    cfg, _ = drift_settings(config)
    interval = config.windows.evaluation_interval
    seconds = run_length_of_alpha(cfg.alpha, interval)
    text = describe_run_length(seconds).replace("one false alarm", "at most one false alarm")
    return {"alpha": cfg.alpha, "evaluation_interval": interval, "run_length_seconds": seconds,
            "expected_run_time": config.drift.expected_run_time,
            "text": f"α {cfg.alpha:.2g} per evaluation every {interval:g} s: {text} per test"}


def finite_number(v: Any) -> Optional[float]:
    """``v`` as a finite float, or None (None, booleans, text, NaN, infinities)."""
    if type(v) is float:  # most values: no conversion to try
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


_num = finite_number


def profile_estimation(profile: Any) -> Optional[Dict[str, Any]]:
    """What the profile's CBPE extension says about its calibration (static per profile): per
    score column its method, ECE, reliability curve, warnings; the reference accuracy."""
    est = (getattr(profile, "extensions", None) or {}).get("performance")
    if est is None or getattr(est, "kind", None) != "cbpe":
        return None
    cals = []
    for name, c in zip(est.scores, est.calibrations):
        cals.append({"score": name, "method": c.method, "ece": _num(c.ece), "ok": bool(c.ok),
                     "warnings": list(c.warnings), "rows": int(c.rows), "curve": dict(c.curve)})
    eces = [c["ece"] for c in cals if c["ece"] is not None]
    return {"classes": [str(c) for c in est.classes], "binary": bool(est.binary), "calibrations": cals,
            catalogue.CALIBRATION_ERROR.name: max(eces) if eces else None,
            "reference": {k: v for k, v in (est.reference or {}).items()}}


_CALIBRATION_ERRORS = IdentityCache(1024, weak=True)  # profile → its calibration error
_MISSING = object()


def _calibration_error(profile: Any) -> Optional[float]:
    """:func:`profile_estimation`'s calibration error, made once per profile object (a profile
    never changes; the cache holds only a weak reference to it)."""
    hit = _CALIBRATION_ERRORS.get((profile,), _MISSING)
    if hit is not _MISSING:
        return hit
    return _CALIBRATION_ERRORS.put((profile,), (profile_estimation(profile) or {}).get(_CALIBRATION_ERROR))


def _estimation(result: Any, sigmas: float, profile: Any) -> Dict[str, Any]:
    metrics = {name: {"value": _num(m.value), "lower": _num(m.lower), "upper": _num(m.upper),
                      "sampling_error": _num(m.sampling_error)} for name, m in result.metrics.items()}
    return {"rows": int(result.rows), "skipped": int(result.skipped), "average": result.average, "sigmas": sigmas,
            "metrics": metrics, "roc_auc_error_bound": _num(result.roc_auc_error_bound),
            "calibration_ok": bool(result.calibration_ok), "warnings": list(result.warnings),
            _CALIBRATION_ERROR: _calibration_error(profile)}


def _disagreements(profile: Any, result: Any, perf: Mapping[str, Any], sigmas: float, min_labels: int) -> Tuple[int, Dict[str, Any]]:
    """``(labelled rows, disagreement(...))`` of the estimate ``result`` against the realized
    figures ``perf`` of the same windows; nothing before ``min_labels`` labels joined."""
    labelled = int(perf.get("rows") or 0)
    if labelled < min_labels:
        return labelled, {}
    est = profile.extensions["performance"]
    realized = {k: perf.get(k) for k in (_MULTICLASS_DISAGREEMENT if not est.binary else result.metrics) if k in perf}
    return labelled, disagreement(est, result, realized, labelled, sigmas=sigmas)


def _disagreement(profile: Any, result: Any, perf: Mapping[str, Any], sigmas: float, min_labels: int) -> Dict[str, Any]:
    labelled, found = _disagreements(profile, result, perf, sigmas, min_labels)
    return {name: {"estimated": _num(d.estimated), "realized": _num(d.realized), "difference": _num(d.difference),
                   "band": _num(d.band), "disagree": bool(d.disagree), "labels": labelled}
            for name, d in found.items()}


def _finite(values: Sequence[Any]) -> List[Optional[float]]:
    """:func:`finite_number` of each of ``values`` (floats as a test's result lists them)."""
    return [v if type(v) is float and v - v == 0.0 else finite_number(v) for v in values]


def _correlation(r: Any) -> Dict[str, Any]:
    a, b, ref, cur, change, _, p_adj, drifted = r.pair_columns(_PAIRS_KEPT)  # largest change first
    pairs = [{"a": x, "b": y, "reference": rf, "current": c, "change": ch, "p_value_adjusted": pa, "drifted": bool(f)}
             for x, y, rf, c, ch, pa, f in zip(a, b, _finite(ref), _finite(cur), _finite(change), _finite(p_adj), drifted)]
    return {"tested": bool(r.tested), "drifted": bool(r.drifted), "max_change": _num(r.max_change), "rows": int(r.rows),
            "alpha": _num(r.alpha), "min_change": _num(r.min_change), "drifted_pairs": [list(p) for p in r.drifted_pairs],
            "pairs": pairs, "note": r.note}


def _reconstruction(r: Any) -> Dict[str, Any]:
    return {"tested": bool(r.tested), "drifted": bool(r.drifted), "mean_error": _num(r.mean_error), "rows": int(r.rows),
            "lower": _num(r.lower), "upper": _num(r.upper), "reference_mean": _num(r.reference_mean),
            "components": int(r.components), "explained_variance": _num(r.explained_variance), "note": r.note}


def _embedding(r: Any) -> Dict[str, Any]:
    return {"tested": bool(r.tested), "drifted": bool(r.drifted), "rows": int(r.rows), "missing": int(r.missing),
            "invalid": int(r.invalid), "mean_p_value": _num(r.mean_p_value), "mean_effect": _num(r.mean_effect),
            "norm_p_value": _num(r.norm_p_value), "norm_effect": _num(r.norm_effect), "note": r.note}


class Deferred(NamedTuple):
    """A rolling view's extension results, kept as the tests made them: the view is evaluated
    every cycle, but read (status, the report) far less often, so its plain data is made on
    read (:func:`readable`) and its series straight from the results (:func:`extension_series`)."""

    extensions: Dict[str, Any]  # DriftReport.extensions
    profile: Any  # the profile and config they were made with (the model's may change later)
    config: Any


def _kinds(profile: Any, extensions: Mapping[str, Any]) -> List[Tuple[str, str, Any]]:
    """``(section name, extension kind, result)`` of each result."""
    exts = profile.extensions
    return [(name, getattr(exts.get(name), "kind", None), r) for name, r in extensions.items()]


def _extension_results(profile: Any, config: Any, extensions: Mapping[str, Any], res: Dict[str, Any]) -> None:
    """The plain data of the extension results (see the module docstring), into ``res``."""
    ecfg = config.drift.estimation
    embeddings: Dict[str, Any] = {}
    for name, kind, r in _kinds(profile, extensions):
        if kind == "cbpe":
            res[ESTIMATION] = _estimation(r, ecfg.sigmas, profile)
            res[DISAGREEMENT] = _disagreement(profile, r, res.get("performance") or {}, ecfg.sigmas, ecfg.min_labels)
        elif kind == "correlation":
            res[CORRELATION] = _correlation(r)
        elif kind == "pca":
            res[RECONSTRUCTION] = _reconstruction(r)
        elif kind == "vector":
            embeddings[getattr(r, "column", name)] = _embedding(r)
    if embeddings:
        res[EMBEDDINGS] = embeddings


def extension_fields(ms: Any, report: Optional[DriftReport], res: Dict[str, Any], *, defer: bool = False) -> None:
    """Add the extensions of ``report`` (None: not tested) to the window result ``res`` in
    place, judging the estimate against ``res["performance"]`` (see the module docstring).
    ``defer``: keep the extension results as they are under a private key (:class:`Deferred`)
    and make their plain data when the result is read (:func:`readable`)."""
    res[FALSE_ALARMS] = false_alarms(ms.config)
    if report is None:
        return
    drift = res.get("drift") or {}
    for name, c in report.columns.items():
        if c.tested and name in drift:
            drift[name]["figures"] = c.figures
            if c.statistic_bounds is not None:
                drift[name]["statistic_bounds"] = [float(b) for b in c.statistic_bounds]
    if not report.extensions:
        return
    res[catalogue.MULTIVARIATE_DRIFT.name] = bool(report.multivariate_drift)
    if defer:
        res[_DEFERRED] = Deferred(report.extensions, ms.profile, ms.config)
    else:
        _extension_results(ms.profile, ms.config, report.extensions, res)


_DEFERRED = "_extension_results"  # private key of a window result (never shown): its Deferred


def readable(res: Mapping[str, Any]) -> Mapping[str, Any]:
    """``res`` as it is shown: a deferred view's extension results as plain data (a new dict;
    ``res`` is left as it is), any other result as it is."""
    d = res.get(_DEFERRED)
    if d is None:
        return res
    out = {k: v for k, v in res.items() if k != _DEFERRED}
    _extension_results(d.profile, d.config, d.extensions, out)
    for _, kind, r in _kinds(d.profile, d.extensions):
        if kind == "outliers":
            out["quality"] = _with_outliers(out.get("quality") or {}, r)
    return out


def outlier_fields(entry: Dict[str, Any], share: Any, reference_share: Any) -> None:
    """Put a column's outlier share beside the reference's into its quality ``entry``."""
    entry[_OUTLIER_SHARE] = share if type(share) is float and share - share == 0.0 else finite_number(share)
    entry["outlier_share_reference"] = (reference_share if type(reference_share) is float and reference_share - reference_share == 0.0
                                        else finite_number(reference_share))


def _with_outliers(quality: Mapping[str, Any], r: Any) -> Dict[str, Any]:
    """A view's quality entries with each outlier column's share beside the reference's (and
    the issue), as :func:`raywatch.aggregate.evaluate._drift_fields` puts them for a window
    tested whole: a new dict, ``quality`` left as it is."""
    out = dict(quality)
    for col, share, reference_share, issue in r.shares():
        entry = out.get(col)
        if entry is None:
            continue
        entry = out[col] = dict(entry)
        outlier_fields(entry, share, reference_share)
        if issue:
            entry["issues"] = list(entry.get("issues") or ()) + [_OUTLIER_SHARE]
    return out


def detector_calibrations(ms: Any, detectors: Dict[str, Dict[str, Any]]) -> None:
    """Add to each detector's entry of the view where its calibration from
    ``expected_run_time`` stands (:meth:`~raywatch.aggregate.calibrated.DetectorCalibrations.info`),
    for the detectors that have one."""
    for name, entry in detectors.items():
        info = ms.calibrations.info(name, ms.detector_config(name))
        if info is not None:
            entry["calibration"] = info


def history_fields(ms: Any) -> Dict[str, Any]:
    """What the report reads besides the windows: the false-alarm rates in time (the drift
    tests', and each calibrated detector's) and the profile's calibration (reliability curves,
    ECE) when it has a CBPE extension."""
    dets = {}
    for name in NAMES:
        info = ms.calibrations.info(name, ms.detector_config(name))
        if info is not None:
            dets[name] = info
    out: Dict[str, Any] = {FALSE_ALARMS: dict(false_alarms(ms.config), detectors=dets)}
    prof = profile_estimation(ms.profile)
    if prof is not None:
        out[ESTIMATION] = prof
    return out


_series = tuple.__new__  # _series(Series, (name, labels, value)): a Series without its Python-level __new__


class _SeriesPlan:
    """What a model's extension series share from one cycle to the next, made once per profile
    and model labels and kept on the profile (a stats actor makes the same series of a model
    every cycle): the label sets beyond the model's, ``(label, value)`` → ``{**base, label:
    value}``; each outlier extension's columns and their label sets; the calibration error's
    series (it never changes). Read only: a series never changes its labels."""

    __slots__ = ("base", "sets", "kinds", "estimated", "outliers", "calibration")

    def __init__(self, profile: Any, base: Mapping[str, str]):
        self.base, self.sets = base, {}
        self.kinds = {name: getattr(ext, "kind", None) for name, ext in profile.extensions.items()}
        # each estimated metric: its series' name and the band's labels
        self.estimated = {metric: (m.name, self.labelled("metric", metric)) for metric, m in catalogue.ESTIMATED.items()}
        self.outliers: Dict[str, Tuple[frozenset, List[Dict[str, str]]]] = {}
        for name, ext in profile.extensions.items():
            if self.kinds[name] == "outliers":
                cols = list(ext.columns)
                self.outliers[name] = (frozenset(cols), [self.labelled("feature", c) for c in cols])
        v = _calibration_error(profile)
        v = v if type(v) is float and v - v == 0.0 else _num(v)
        self.calibration = None if v is None else [_series(Series, (_CALIBRATION_ERROR, base, v))]

    def labelled(self, label: str, value: str) -> Dict[str, str]:
        lab = self.sets.get((label, value))
        if lab is None:
            lab = self.sets[(label, value)] = {**self.base, label: value}
        return lab


def _series_plan(profile: Any, base: Mapping[str, str]) -> _SeriesPlan:
    kept = profile.__dict__.get("_series_plans")
    if kept is None:
        kept = profile.__dict__["_series_plans"] = {}
    key = tuple(base.items())
    plan = kept.get(key)
    if plan is None:
        if len(kept) >= 16:
            kept.clear()
        plan = kept[key] = _SeriesPlan(profile, dict(base))
    return plan


def extension_series(base: Mapping[str, str], r: Mapping[str, Any]) -> List[Series]:
    """The catalogue series of the extensions in the rolling view ``r`` (evaluated with
    ``defer``; see the module docstring), made from the tests' results: estimated performance
    and its band, calibration error and disagreement; correlation, reconstruction and
    embedding drift; each outlier column's share; multivariate drift. ``base``: the model's
    labels as text, shared by the series that add none (as ``model_series`` does)."""
    out: List[Series] = []
    append = out.append

    def add(name: str, value: Any, labels: Mapping[str, str] = base) -> None:
        v = value if type(value) is float and value - value == 0.0 else _num(value)
        if v is not None:
            append(_series(Series, (name, labels, v)))

    d = r.get(_DEFERRED)
    plan = _series_plan(d.profile, base) if d is not None else None
    kinds = plan.kinds if plan is not None else {}
    for name, x in (d.extensions.items() if d is not None else ()):
        kind = kinds.get(name)
        if kind == "cbpe":
            labelled, estimated_of = plan.labelled, plan.estimated
            for metric, m in x.metrics.items():
                hit = estimated_of.get(metric)
                if hit is None:
                    continue
                estimated, lab = hit
                for sname, labels, v in ((estimated, base, m.value), (_LOWER, lab, m.lower), (_UPPER, lab, m.upper)):
                    if type(v) is float and v - v == 0.0:  # most values: no conversion to try
                        append(_series(Series, (sname, labels, v)))
                    elif v is not None:
                        add(sname, v, labels)
            if plan.calibration:
                out += plan.calibration
            ecfg = d.config.drift.estimation
            for metric, dis in _disagreements(d.profile, x, r.get("performance") or {}, ecfg.sigmas, ecfg.min_labels)[1].items():
                labels = labelled("metric", metric)
                add(catalogue.ESTIMATION_DIFFERENCE.name, dis.difference, labels)
                if _num(dis.band) is not None:
                    add(catalogue.ESTIMATION_DISAGREEMENT.name, 1.0 if dis.disagree else 0.0, labels)
        elif kind == "outliers":  # a share per column of the view's quality figures
            quality = r.get("quality") or {}
            cols, labs = plan.outliers.get(name) or (frozenset(), [])
            shares = x.share_list()
            if len(labs) == len(shares) and quality.keys() >= cols:  # every column, as fitted (shares of counts: finite)
                out += [_series(Series, (_OUTLIER_SHARE, lab, v)) for lab, v in zip(labs, shares) if v - v == 0.0]
            else:
                for col, share, _, _ in x.shares():
                    if col in quality:
                        add(_OUTLIER_SHARE, share, plan.labelled("feature", col))
        elif kind == "correlation" and x.tested:
            add(catalogue.CORRELATION_CHANGE_MAX.name, x.max_change)
            add(catalogue.CORRELATION_DRIFT_DETECTED.name, 1.0 if x.drifted else 0.0)
        elif kind == "pca" and x.tested:
            add(catalogue.RECONSTRUCTION_ERROR.name, x.mean_error)
            add(catalogue.RECONSTRUCTION_ERROR_UPPER.name, x.upper)
            add(catalogue.RECONSTRUCTION_DRIFT_DETECTED.name, 1.0 if x.drifted else 0.0)
        elif kind == "vector" and x.tested:
            labels = plan.labelled("feature", getattr(x, "column", name))
            add(catalogue.EMBEDDING_DRIFT_DETECTED.name, 1.0 if x.drifted else 0.0, labels)
            add(catalogue.EMBEDDING_MEAN_SHIFT.name, x.mean_effect, labels)
    if catalogue.MULTIVARIATE_DRIFT.name in r:
        add(catalogue.MULTIVARIATE_DRIFT.name, 1.0 if r.get(catalogue.MULTIVARIATE_DRIFT.name) else 0.0)
    return out
