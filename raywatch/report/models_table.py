"""The report's table of models, worst first (:func:`raywatch.aggregate.ranking.history_rows`):
with many models it opens the report, and only the worst get a full section."""

from __future__ import annotations

from html import escape
from typing import Any, Dict, List, Mapping

from raywatch import series as S
from raywatch.aggregate.ranking import history_rows
from raywatch.report import svg

__all__ = ["models_table", "worst_models"]

TOP = 50  # models with a full section in a report of many (the rest are rows of the table)


def worst_models(history: Mapping[str, Any], top: int = TOP) -> List[str]:
    """The keys of the ``top`` worst models, worst first (all of them when ``top`` <= 0)."""
    keys = [r["model"] for r in history_rows(history)]
    return keys if top <= 0 else keys[:top]


def models_table(history: Mapping[str, Any], anchors: Dict[str, str]) -> str:
    """An HTML table, one row a model, worst first; a model with a section links to it."""
    rows = history_rows(history)
    out = []
    for r in rows:
        key = escape(r["model"])
        name = f'<a href="#{anchors[r["model"]]}">{key}</a>' if r["model"] in anchors else key
        err = r[S.ERROR_RATE.name]
        drifted = f"{r['drifted_features']}/{r['features_tested']}" + (" (dataset)" if r[S.DATASET_DRIFT.name] else "")
        out.append(
            f"<tr><td>{name}</td><td>{r['alerts_firing']}</td><td>{drifted}</td>"
            f"<td>{escape(svg.format_value(err * 100 if err is not None else None, '%'))}</td>"
            f"<td>{escape(svg.format_value(r[S.LATENCY_P95_SECONDS.name], 's'))}</td><td>{r['requests']:,}</td></tr>"
        )
    note = (f'<p class="note">{len(rows)} models, worst first (alerts firing at the end, drifted features in the '
            f"last window, error rate, p95 latency); the first {len(anchors)} have a section below.</p>")
    return ('<h2 id="models">Models, worst first</h2>' + note +
            "<table><tr><th>model</th><th>alerts firing</th><th>drifted features</th><th>error rate</th>"
            "<th>p95 latency</th><th>requests</th></tr>" + "".join(out) + "</table>")
