"""The per-window tests of a profile's extensions, run by :func:`raywatch.drift.detect_drift`.

For every extension of the profile whose section the window carries, the matching test:

====================  =================  ===========================================  ==============
extension kind        option key         test                                         result
====================  =================  ===========================================  ==============
``cbpe``              ``estimation``     :func:`~raywatch.drift.estimation.           PerformanceEstimate
                                         estimate_performance`
``correlation``       ``correlation``    :func:`~raywatch.drift.correlation.          CorrelationChange
                                         correlation_change`
``pca``               ``reconstruction`` :func:`~raywatch.drift.reconstruction.       ReconstructionDrift
                                         reconstruction_drift`
``vector``            ``embeddings``     :func:`~raywatch.drift.embedding.            EmbeddingDrift
                                         embedding_drift`
``outliers``          ``outliers``       :func:`~raywatch.drift.outliers.             {column: OutlierQuality}
                                         outlier_quality`
====================  =================  ===========================================  ==============

Each test's parameters come, in this order of precedence, from ``options[key]`` (a plain
mapping), from the drift config's attribute of that name when it has one (a pydantic model or a
mapping), and from the test's defaults; the outlier test takes the config's
``quality_tolerance`` and ``quality_alpha``, the correlation test its ``correction``, and the
correlation and embedding tests their ``alpha`` unless told otherwise. A test that fails costs only its own result (logged, left out).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from raywatch.drift.correlation import correlation_change
from raywatch.drift.embedding import embedding_drift
from raywatch.drift.estimation import estimate_performance
from raywatch.drift.outliers import outlier_quality
from raywatch.drift.reconstruction import reconstruction_drift
from raywatch.stats.memo import IdentityCache

__all__ = ["TESTS", "run_extension_tests", "option_values"]

log = logging.getLogger("raywatch.drift.extensions")

# extension kind -> (option key, test)
TESTS: Dict[str, tuple] = {
    "cbpe": ("estimation", estimate_performance),
    "correlation": ("correlation", correlation_change),
    "pca": ("reconstruction", reconstruction_drift),
    "vector": ("embeddings", embedding_drift),
    "outliers": ("outliers", outlier_quality),
}


@functools.lru_cache(maxsize=None)
def _parameters(fn: Callable[..., Any]) -> frozenset:
    """The keyword names ``fn`` takes (inspect.signature is slow: once per test function)."""
    return frozenset(inspect.signature(fn).parameters)


def _as_dict(value: Any) -> Dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return dict(value.model_dump())
    return dict(value)


def option_values(key: str, config: Any, options: Optional[Mapping[str, Mapping[str, Any]]]) -> Dict[str, Any]:
    """The parameters of the test ``key``: defaults from the config, then ``options[key]``."""
    out: Dict[str, Any] = {}
    if key == "outliers" and config is not None:
        out.update(tolerance=config.quality_tolerance, alpha=config.quality_alpha)
    if key == "correlation" and config is not None:
        out.update(correction=config.correction)
    if key in ("correlation", "embeddings") and getattr(config, "alpha", None) is not None:
        out.update(alpha=config.alpha)  # unless set for the test itself: the drift tests' level
    out.update({k: v for k, v in _as_dict(getattr(config, key, None)).items() if v is not None})
    out.update(_as_dict((options or {}).get(key)))
    out.pop("enabled", None)
    return out


_SETTINGS = IdentityCache(1024)  # (config) → {extension kind: (option key, test, settings, values, enabled, keyword arguments)}


def _call(test: Callable[..., Any], settings: Dict[str, Any], values: Dict[str, Any]) -> Tuple[bool, Dict[str, Any]]:
    """``(enabled, the keyword arguments test takes)`` of a test's settings and parameter
    values (settings for the caller alone, such as ``min_labels``, stay out)."""
    accepted = _parameters(test)
    return settings.get("enabled") is not False, {k: v for k, v in values.items() if k in accepted}


def _made(key: str, test: Callable[..., Any], config: Any, options: Optional[Mapping[str, Mapping[str, Any]]]) -> tuple:
    """``(key, test, the test's settings, its parameter values, enabled, its keyword arguments)``."""
    if options:
        settings = {**_as_dict(getattr(config, key, None)), **_as_dict(options.get(key))}
    else:
        settings = _as_dict(getattr(config, key, None))
    values = option_values(key, config, options)
    return (key, test, settings, values) + _call(test, settings, values)


def _plan(config: Any) -> Dict[str, tuple]:
    """Every test's :func:`_made` entry by extension kind, made once per configuration object (a
    stats actor evaluates with the same config every cycle, and ``model_dump`` costs more than
    a test's arithmetic): one lookup per window. Read only: never change it."""
    hit = _SETTINGS.get((config,))
    if hit is None:
        hit = _SETTINGS.put((config,), {kind: _made(key, test, config, None) for kind, (key, test) in TESTS.items()})
    return hit


def _prepared(profile: Any, config: Any, options: Optional[Mapping[str, Mapping[str, Any]]]) -> Tuple[tuple, ...]:
    """``(section name, extension, option key, the test with its keyword arguments bound)`` of each enabled test
    of ``profile`` under ``config`` and ``options``, in the profile's order. Without options,
    made once per config object and kept on the profile, which dies with it (a stats actor
    evaluates each model with the same profile and config every cycle): a window's tests are
    one short loop. Read only."""
    if options:  # a caller's mapping may change between calls: read every time
        kept = None
    else:
        options = None
        kept = profile.__dict__.get("_prepared_tests")
        if kept is None:
            kept = profile.__dict__["_prepared_tests"] = {}
        hit = kept.get(id(config))
        if hit is not None and hit[0] is config and hit[1] is profile.extensions:  # not a copy's changed extensions
            return hit[2]
    plan = _plan(config)
    out = []
    for name, ext in profile.extensions.items():
        entry = plan.get(ext.kind)
        if entry is None:
            continue
        if options and options.get(entry[0]):
            entry = _made(entry[0], entry[1], config, options)
        if entry[4]:  # enabled: the test with its keyword arguments bound (one call a window)
            out.append((name, ext, entry[0], functools.partial(entry[1], **entry[5]) if entry[5] else entry[1]))
    if kept is not None:
        if len(kept) >= 16:
            kept.clear()
        kept[id(config)] = (config, profile.extensions, tuple(out))  # holds the config: its id stays its own
    return tuple(out)


def run_extension_tests(profile: Any, summary: Any, config: Any = None,
                    options: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Dict[str, Any]:
    """``{section name: result}`` for every extension of ``profile`` that ``summary`` carries
    a section of (see the module docstring). A test switched off with ``enabled: false`` in
    its options is skipped."""
    results: Dict[str, Any] = {}
    sections = summary.sections
    for name, ext, key, test in _prepared(profile, config, options):
        section = sections.get(name)
        if section is None:
            continue
        try:
            results[name] = test(ext, section)
        except Exception as exc:  # one failing test must not lose the report
            log.warning("the %s test of %r failed (%s: %s); left out of the report", key, name, type(exc).__name__, exc)
    return results
