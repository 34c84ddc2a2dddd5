"""Hundreds of models at a glance: one summary row a model, worst first, a page at a time.

:func:`status_rows` turns the status of many models (``StatsCore.status()["models"]``, what
``raywatch.status()`` answers) into one row each — firing alerts (critical ones apart),
drifted features, dataset drift, error rate, p95 latency, throughput — sorted worst first;
:func:`history_rows` does the same from a history (the report's input: each model's last
window and the alert events). :func:`page` cuts a page out of them. ``raywatch status``
prints the table (``--limit``/``--page``) before the details of the models on that page, and
the report opens with it and gives the worst models their full sections.

Worst first means, in this order: more critical alerts firing, more alerts firing, dataset
drift, a larger share of drifted features, a higher error rate, a higher p95 latency; ties by
model key.

>>> models = {"a/ok": {"rolling": {}, "drift": {"columns": {"x": {"drifted": False}}}},
...           "a/bad": {"rolling": {series.ERROR_RATE.name: 0.2, series.DATASET_DRIFT.name: True},
...                     "drift": {"columns": {"x": {"drifted": True}}},
...                     "alerts": [{"state": "firing", "labels": {"severity": "critical"}}]}}
>>> [(r["model"], r["alerts_firing"], r["drifted_features"]) for r in status_rows(models)]
[('a/bad', 1, 1), ('a/ok', 0, 0)]
>>> p = page(status_rows(models), limit=1, page=2)
>>> [r["model"] for r in p["rows"]], p["page"], p["pages"], p["total"]
(['a/ok'], 2, 2, 2)
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional

from raywatch import series

__all__ = ["status_rows", "history_rows", "page", "COLUMNS"]

# the row's fields, in table order (model first)
COLUMNS = ("model", "alerts_firing", "critical", "drifted_features", "features_tested", series.DATASET_DRIFT.name,
           series.ERROR_RATE.name, series.LATENCY_P95_SECONDS.name, series.THROUGHPUT_RPS.name, "requests")


def _num(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _severity(a: Mapping[str, Any]) -> str:
    return str((a.get("labels") or {}).get("severity", a.get("severity", "")))


def _row(key: str, figures: Mapping[str, Any], drift: Mapping[str, Any], firing: List[Mapping[str, Any]],
         requests: Any) -> Dict[str, Any]:
    tested = [d for d in drift.values() if isinstance(d, Mapping)]
    return {
        "model": key,
        "alerts_firing": len(firing),
        "critical": sum(1 for a in firing if _severity(a) == "critical"),
        "drifted_features": sum(1 for d in tested if d.get("drifted")),
        "features_tested": len(tested),
        series.DATASET_DRIFT.name: bool(figures.get(series.DATASET_DRIFT.name)),
        series.ERROR_RATE.name: _num(figures.get(series.ERROR_RATE.name)),
        series.LATENCY_P95_SECONDS.name: _num(figures.get(series.LATENCY_P95_SECONDS.name)),
        series.THROUGHPUT_RPS.name: _num(figures.get(series.THROUGHPUT_RPS.name)),
        "requests": int(_num(requests) or 0),
    }


def _worst_first(rows: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    def key(r: Dict[str, Any]):
        share = r["drifted_features"] / r["features_tested"] if r["features_tested"] else 0.0
        return (-r["critical"], -r["alerts_firing"], -int(r[series.DATASET_DRIFT.name]), -share,
                -(r[series.ERROR_RATE.name] or 0.0), -(r[series.LATENCY_P95_SECONDS.name] or 0.0), r["model"])

    return sorted(rows, key=key)


def status_rows(models: Mapping[str, Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """One row a model of a status answer's ``models``, worst first (see the module docstring)."""
    rows = []
    for key, m in models.items():
        roll = m.get("rolling") or {}
        drift = (m.get("drift") or {}).get("columns") or {}
        firing = [a for a in (m.get("alerts") or []) if str(a.get("state", "firing")) == "firing"]
        rows.append(_row(key, roll, drift, firing, (m.get("totals") or {}).get("requests", roll.get("requests"))))
    return _worst_first(rows)


def history_rows(history: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One row a model of a history (the report's input): its last window's figures, the
    alerts still firing at the end of the period (per alert name and labels), worst first."""
    last_state: Dict[Any, Mapping[str, Any]] = {}
    for a in sorted(history.get("alerts") or [], key=lambda a: _num(a.get("ts")) or 0.0):
        labels = a.get("labels") or {}
        last_state[(str(a.get("alertname") or labels.get("alertname")), repr(sorted(labels.items())))] = a
    firing_by_model: Dict[str, List[Mapping[str, Any]]] = {}
    for a in last_state.values():
        if str(a.get("state", "")).lower() == "firing":
            firing_by_model.setdefault(_model_of(a), []).append(a)
    rows = []
    for key, m in (history.get("models") or {}).items():
        windows = sorted(m.get("windows") or [], key=lambda w: _num(w.get("end")) or 0.0)
        last = windows[-1] if windows else {}
        requests = sum(_num(w.get("requests")) or 0 for w in windows)
        rows.append(_row(key, last, last.get("drift") or {}, firing_by_model.get(key, []), requests))
    return _worst_first(rows)


def _model_of(a: Mapping[str, Any]) -> str:
    labels = a.get("labels") or {}
    if a.get("model_key"):
        return str(a["model_key"])
    return f"{labels.get('app', '')}/{labels.get('deployment', '')}"


def page(rows: List[Dict[str, Any]], limit: Optional[int] = None, page: int = 1) -> Dict[str, Any]:
    """Page ``page`` (from 1) of ``limit`` rows (all when None): ``rows``, ``page``, ``pages``,
    ``total``; a page past the last is empty."""
    total = len(rows)
    if limit is None or limit <= 0:
        return {"rows": list(rows), "page": 1, "pages": 1, "total": total}
    pages = max(1, math.ceil(total / limit))
    page = max(1, int(page))
    return {"rows": rows[(page - 1) * limit: page * limit], "page": page, "pages": pages, "total": total}
