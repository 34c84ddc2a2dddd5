"""``raywatch status`` with many models: the summary table, worst first, a page at a time."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import click

from raywatch import series
from raywatch.aggregate.ranking import page as page_of
from raywatch.aggregate.ranking import status_rows
from raywatch.cli.common import fmt

__all__ = ["summary_lines", "paged"]

_HEAD = ("model", "alerts", "drifted", "error rate", "p95", "throughput", "requests")


def _cells(r: Mapping[str, Any]) -> Tuple[str, ...]:
    alerts = str(r["alerts_firing"]) + (f" ({r['critical']} critical)" if r["critical"] else "")
    drifted = f"{r['drifted_features']}/{r['features_tested']}" + (" dataset" if r[series.DATASET_DRIFT.name] else "")
    err = r[series.ERROR_RATE.name]
    return (r["model"], alerts, drifted, fmt(err * 100 if err is not None else None, "%"),
            fmt(r[series.LATENCY_P95_SECONDS.name], "s"), fmt(r[series.THROUGHPUT_RPS.name]) + "/s", f"{r['requests']:,}")


def summary_lines(rows_page: Mapping[str, Any]) -> List[str]:
    """The table of one page of :func:`raywatch.aggregate.ranking.page` (worst first)."""
    rows = [_HEAD] + [_cells(r) for r in rows_page["rows"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    out = [click.style(f"{rows_page['total']} models, worst first — page {rows_page['page']} of {rows_page['pages']}",
                       bold=True)]
    for n, row in enumerate(rows):
        line = "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        out.append(click.style(line, bold=True) if n == 0 else line)
    if rows_page["page"] < rows_page["pages"]:
        out.append(f"(next: --page {rows_page['page'] + 1})")
    return out


def paged(st: Dict[str, Any], limit: Optional[int], page: int) -> Tuple[List[str], Dict[str, Any]]:
    """``(table lines, status)``: with more models than ``limit`` (or a page asked past the
    first), the summary table of page ``page`` and a status holding that page's models
    only, in the table's order; otherwise no table and ``st`` itself."""
    models = st.get("models") or {}
    if limit is None or limit <= 0 or (len(models) <= limit and page <= 1):
        return [], st
    p = page_of(status_rows(models), limit, page)
    out = dict(st)
    out["models"] = {r["model"]: models[r["model"]] for r in p["rows"]}
    return summary_lines(p) + [""], out
