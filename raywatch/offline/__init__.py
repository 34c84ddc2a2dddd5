"""Offline and batch work at cluster scale: profiles and drift over files, batch-inference jobs.

* :func:`fit_profile`, :func:`summarize`, :func:`drift` — over Parquet or CSV files,
  directories and URIs, in this process or on Ray Data (``engine="ray"``): per-block work
  and a tree merge, the same figures as the single-process path
  (:mod:`raywatch.offline.engine`, :mod:`raywatch.offline.fit`);
* :func:`monitor_batches` — a Ray Data ``map_batches`` function or class monitored like a
  Serve deployment, as the model ``batch/<job>`` (:mod:`raywatch.offline.batch`).

Ray Data is imported when a command runs on it (``pip install 'raywatch[data]'``).
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

_EXPORTS = {
    "fit_profile": "raywatch.offline.engine:fit_profile",
    "summarize": "raywatch.offline.engine:summarize",
    "drift": "raywatch.offline.engine:drift",
    "monitor_batches": "raywatch.offline.batch:monitor_batches",
    "resolve": "raywatch.offline.sources:resolve",
    "Source": "raywatch.offline.sources:Source",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
