"""Building a profile's extensions from :meth:`Profile.fit`'s plain options.

Each option names one extension (see :mod:`raywatch.stats.sections`); the reference columns
come already split: ``cols`` holds the profiled columns (numpy arrays), ``held`` the vector
columns, and ``target`` the label column, used only to fit the performance estimator.

=================  =======================================  ==================================
option             value                                    extension (section name)
=================  =======================================  ==================================
``performance``    ``{"target", "scores", "prediction",     :class:`~raywatch.stats.confidence.
                   "positive", "threshold", "calibration"}``  ConfidenceEstimator` (performance)
``correlation``    True (numerical columns) or a list       :class:`~raywatch.stats.comoments.
                                                             CorrelationExtension` (correlation)
``pca``            True or ``{"columns", "variance"}``      :class:`~raywatch.stats.
                                                             reconstruction.PCAExtension` (pca)
``outliers``       True or ``{"columns", "method", "k"}``   :class:`~raywatch.stats.outliers.
                                                             OutlierFences` (outliers)
``vectors``        a list of names or ``{name: {"dims"}}``  :class:`~raywatch.stats.vectors.
                                                             VectorSketch` (``vector:<name>``)
=================  =======================================  ==================================
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from raywatch.stats.sections import Batch, Extension

__all__ = ["fit_extensions"]

_PERFORMANCE_KEYS = {"target", "scores", "prediction", "positive", "threshold", "calibration"}


def _numerical(kinds: Mapping[str, str], option: Any, what: str) -> List[str]:
    names = [n for n, k in kinds.items() if k == "numerical"]
    if option is True:
        return names
    chosen = [str(c) for c in option]
    bad = [c for c in chosen if c not in names]
    if bad:
        raise ValueError(f"{what}: {', '.join(bad)} are not numerical columns of the reference")
    return chosen


def _options(value: Any, what: str) -> Dict[str, Any]:
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return {"columns": list(value)}
    raise TypeError(f"{what}: expected True, a list of columns or a mapping of options, got {value!r}")


def fit_extensions(
    cols: Mapping[str, np.ndarray],
    held: Mapping[str, Any],
    rows: int,
    kinds: Mapping[str, str],
    *,
    target: Optional[np.ndarray] = None,
    performance: Optional[Mapping[str, Any]] = None,
    correlation: Union[bool, Sequence[str]] = False,
    pca: Union[bool, Mapping[str, Any]] = False,
    outliers: Union[bool, Mapping[str, Any]] = False,
    vectors: Union[Sequence[str], Mapping[str, Mapping[str, Any]]] = (),
    seed: Optional[int] = None,
) -> List[Extension]:
    """The extensions :meth:`raywatch.stats.profile.Profile.fit`'s options ask for."""
    out: List[Extension] = []
    batch = Batch(dict(cols), rows)
    if performance:
        from raywatch.stats.confidence import ConfidenceEstimator

        unknown = set(performance) - _PERFORMANCE_KEYS
        if unknown:
            raise ValueError(f"performance: unknown options {sorted(unknown)} (use {sorted(_PERFORMANCE_KEYS)})")
        scores = performance.get("scores")
        if not scores:
            raise ValueError("performance: give the score column (binary) or {class: column} (multiclass)")
        by = dict(scores) if isinstance(scores, Mapping) else None
        names = list(by.values()) if by is not None else [str(scores)]
        pred_name = performance.get("prediction")
        for n in names + ([pred_name] if pred_name else []):
            if n not in cols:
                raise ValueError(f"performance: column {n!r} is not in the reference data")
        score_data = {c: batch.numeric(col) for c, col in by.items()} if by is not None else batch.numeric(names[0])
        out.append(ConfidenceEstimator.fit(
            target, score_data, cols[pred_name] if pred_name else None,
            positive=performance.get("positive", 1), threshold=float(performance.get("threshold", 0.5)),
            calibration=performance.get("calibration", "auto"), score_columns=names, prediction_column=pred_name,
            seed=0 if seed is None else seed,
        ))
    if correlation:
        from raywatch.stats.comoments import CorrelationExtension

        names = _numerical(kinds, correlation, "correlation")
        out.append(CorrelationExtension.fit(names, batch.matrix(names)))
    if pca:
        from raywatch.stats.reconstruction import PCAExtension

        opts = _options(pca, "pca")
        names = _numerical(kinds, opts.pop("columns", True), "pca")
        out.append(PCAExtension.fit(names, batch.matrix(names), **opts))
    if outliers:
        from raywatch.stats.outliers import OutlierFences

        opts = _options(outliers, "outliers")
        names = _numerical(kinds, opts.pop("columns", True), "outliers")
        out.append(OutlierFences.fit({n: batch.numeric(n) for n in names}, **opts))
    if vectors:
        from raywatch.stats.vectors import VectorSketch

        specs = dict(vectors) if isinstance(vectors, Mapping) else {str(v): {} for v in vectors}
        for name, opts in specs.items():
            if name not in held:
                raise ValueError(f"vectors: column {name!r} is not in the reference data")
            out.append(VectorSketch.fit(name, held[name], seed=seed, **dict(opts or {})))
    return out
