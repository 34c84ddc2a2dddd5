"""The bins a feature's distribution is drawn with: the reference profile's bins (or
categories) as labels and counts, regrouped into a few display bins when there are many.

>>> bin_labels({"edges": [0.0, 1.0, 2.0], "counts": [1, 2, 3, 4]})
(['<0', '0–1', '1–2', '>2'], [1.0, 2.0, 3.0, 4.0])
>>> rebin([0.0, 2.0], [0, 4, 0], [0.0, 1.0, 2.0])
[2.0, 2.0]
"""

from __future__ import annotations

import bisect
import math
from typing import Any, List, Mapping, Sequence, Tuple

from raywatch.report.svg import format_value

__all__ = ["bin_labels", "rebin", "display_hist"]


def _count(c: Any) -> float:
    """A bin count as a float; anything that is not a finite number counts 0."""
    if isinstance(c, (bool, int, float)) and math.isfinite(c):
        return float(c)
    return 0.0


def bin_labels(dist: Mapping[str, Any]) -> Tuple[List[str], List[float]]:
    counts = [_count(c) for c in dist.get("counts", [])]
    if "categories" in dist:
        cats = [str(c) for c in dist.get("categories", [])]
        cats += ["(other)"] * (len(counts) - len(cats))
        return cats[: len(counts)], counts
    edges = [float(e) for e in dist.get("edges", [])]
    fmt = format_value
    if len(counts) == len(edges) - 1:
        labels = [f"{fmt(edges[i])}–{fmt(edges[i + 1])}" for i in range(len(counts))]
    elif len(counts) == len(edges) + 1:  # with underflow / overflow bins
        labels = [f"<{fmt(edges[0])}"] if edges else []
        labels += [f"{fmt(edges[i])}–{fmt(edges[i + 1])}" for i in range(len(edges) - 1)]
        labels += [f">{fmt(edges[-1])}"] if edges else []
    else:
        labels = [str(i) for i in range(len(counts))]
    return labels, counts


def rebin(edges: Sequence[float], counts: Sequence[float], targets: Sequence[float]) -> List[float]:
    """Spread ``counts`` of bins (with open ends: len(counts) == len(edges) + 1) over the
    display bins ``targets`` (edges), uniformly within each source bin; the open ends go to
    the first and last display bins."""
    out = [0.0] * (len(targets) - 1)
    if not out:
        return out
    out[0] += counts[0]
    out[-1] += counts[-1]
    for i in range(len(edges) - 1):
        lo, hi, c = edges[i], edges[i + 1], counts[i + 1]
        if c == 0:
            continue
        if hi <= lo:
            j = min(max(_bisect(targets, lo) - 1, 0), len(out) - 1)
            out[j] += c
            continue
        for j in range(len(out)):
            a, b = max(lo, targets[j]), min(hi, targets[j + 1])
            if b > a:
                out[j] += c * (b - a) / (hi - lo)
    return out


def _bisect(xs: Sequence[float], x: float) -> int:
    return bisect.bisect_right(list(xs), x)


def display_hist(ref: Mapping[str, Any], cur: Mapping[str, Any], max_bins: int = 24) -> Tuple[List[str], List[float], List[float]]:
    """Labels and counts to draw for one feature: categories as they are (empty ones
    dropped); numerical bins as they are when few, else regrouped into ``max_bins`` display
    bins (log-spaced when the values are positive and span more than two decades)."""
    labels, rc = bin_labels(ref)
    _, cc = bin_labels(cur) if cur else ([], [])
    edges = [float(e) for e in ref.get("edges") or []]
    if "categories" in ref or not edges or len(rc) != len(edges) + 1 or len(rc) <= max_bins + 2:
        keep = [i for i in range(len(rc)) if rc[i] > 0 or (i < len(cc) and cc[i] > 0)]
        if "categories" in ref and keep:
            return [labels[i] for i in keep], [rc[i] for i in keep], [cc[i] for i in keep if i < len(cc)]
        return labels, rc, cc
    lo, hi = edges[0], edges[-1]
    if lo > 0 and hi / lo > 20:
        r = (hi / lo) ** (1.0 / max_bins)
        targets = [lo * r**k for k in range(max_bins + 1)]
    else:
        targets = [lo + (hi - lo) * k / max_bins for k in range(max_bins + 1)]
    targets[-1] = hi
    fmt = format_value
    out_labels = [f"{fmt(targets[k])}–{fmt(targets[k + 1])}" for k in range(max_bins)]
    out_labels[0] = f"≤{fmt(targets[1])}"
    out_labels[-1] = f"≥{fmt(targets[-2])}"
    rr = rebin(edges, rc, targets)
    cr = rebin(edges, cc, targets) if len(cc) == len(rc) else []
    return out_labels, rr, cr
