"""Small SVG chart primitives for the HTML report: line charts over time and paired
histograms, with the axes, ticks and value formatting they share (the heat strip and the
alert timeline are in :mod:`raywatch.report.strips`). Pure Python; the output is inline SVG
markup that needs no script, font or network to render.

Every function escapes the text it is given and returns a string. Values that are missing
(``None`` or NaN) are skipped: a line breaks instead of dropping to zero.

>>> svg = line_chart({"p95": [(0, 0.1), (60, 0.2), (120, None), (180, 0.15)]}, title="latency")
>>> svg.startswith("<svg") and svg.count("<path") == 2
True
>>> "latency" in histogram_pair(["a", "b"], [3, 1], [1, 3], title="latency")
True
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "PALETTE",
    "nice_ticks",
    "format_value",
    "line_chart",
    "histogram_pair",
    "empty_chart",
]

# colour-blind-safe palette (Okabe-Ito), first two used for reference / current
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
REFERENCE_COLOR = "#0072B2"
CURRENT_COLOR = "#E69F00"
SEVERITY_COLORS = {"critical": "#C0392B", "page": "#C0392B", "error": "#D55E00", "warning": "#E69F00", "info": "#0072B2"}

Point = Tuple[float, Optional[float]]


def _ok(v: Optional[float]) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def nice_ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    """About ``n`` round tick values covering [lo, hi].

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> nice_ticks(3, 3)
    [2.5, 3.0, 3.5]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo == 0:
        return [0.0, 1.0]
    if hi == lo:
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
        n = 2
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi - step * 1e-9:
        ticks.append(round(v, 12))
    return [float(t) for t in ticks]


def format_value(v: Optional[float], unit: str = "") -> str:
    """Compact human formatting: ``format_value(0.0123, "s")`` -> ``'12.3 ms'``.

    >>> format_value(0.0123, "s"), format_value(2_500_000, "B"), format_value(0.5, "%"), format_value(1234.0)
    ('12.3 ms', '2.38 MiB', '0.5%', '1.23k')
    """
    if not _ok(v):
        return "–"
    v = float(v)
    if unit == "s":
        a = abs(v)
        if a == 0:
            return "0 s"
        if a < 1e-3:
            return f"{v * 1e6:.3g} µs"
        if a < 1:
            return f"{v * 1e3:.3g} ms"
        return f"{v:.3g} s"
    if unit == "B":
        for u, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(v) >= f:
                return f"{v / f:.3g} {u}"
        return f"{v:.0f} B"
    if unit == "%":
        return f"{v:.3g}%"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.3g}G"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a == 0:
        return "0"
    if a < 1e-3:
        return f"{v:.2e}"
    return f"{v:.3g}"


def _fmt_time(ts: float, span: float) -> str:
    t = time.gmtime(ts)
    if span > 2 * 86400:
        return time.strftime("%m-%d %H:%M", t)
    if span > 600:
        return time.strftime("%H:%M", t)
    return time.strftime("%H:%M:%S", t)


def _time_ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    if hi <= lo:
        return [lo]
    steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
    raw = (hi - lo) / n
    step = next((s for s in steps if s >= raw), steps[-1] * math.ceil(raw / steps[-1]))
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) // step) + 1)]


def _svg_open(width: int, height: int, title: str) -> str:
    label = escape(title or "chart")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{label}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
    )


def empty_chart(title: str, message: str = "no data in this period", width: int = 460, height: int = 200) -> str:
    """A framed chart area that says why there is nothing to draw."""
    return (
        _svg_open(width, height, title)
        + f'<text class="ctitle" x="8" y="16">{escape(title)}</text>'
        + f'<rect x="40" y="28" width="{width - 56}" height="{height - 60}" class="frame"/>'
        + f'<text class="muted" x="{width / 2:.0f}" y="{height / 2 + 4:.0f}" text-anchor="middle">{escape(message)}</text>'
        + "</svg>"
    )


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str = "",
    unit: str = "",
    width: int = 460,
    height: int = 200,
    y_min: Optional[float] = None,
    y_max: Optional[float] = None,
    colors: Optional[Mapping[str, str]] = None,
    markers: Optional[Mapping[str, Sequence[float]]] = None,
    hline: Optional[Tuple[float, str]] = None,
    vlines: Sequence[Tuple[float, str]] = (),
) -> str:
    """Lines over time (x = UTC epoch seconds). ``markers[name]`` are x values where that
    series gets a red dot (e.g. windows where drift was detected); ``hline`` draws a
    dashed threshold; ``vlines`` mark events (x, label)."""
    pts = {k: [(float(x), float(y)) for x, y in v if _ok(x) and _ok(y)] for k, v in series.items()}
    all_pts = [p for v in pts.values() for p in v]
    if not all_pts:
        return empty_chart(title, width=width, height=height)
    colors = dict(colors or {})
    for i, k in enumerate(series):
        colors.setdefault(k, PALETTE[i % len(PALETTE)])
    xs = [p[0] for p in all_pts]
    ys = [p[1] for p in all_pts]
    if hline is not None and _ok(hline[0]):
        ys.append(float(hline[0]))
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 30, x1 + 30
    lo = min(ys) if y_min is None else y_min
    hi = max(ys) if y_max is None else y_max
    if y_min is None and lo > 0 and lo < 0.5 * hi:
        lo = 0.0
    yt = nice_ticks(lo, hi)
    lo, hi = yt[0], yt[-1]
    left, right, top, bottom = 58, 26, 26, 34
    legend_h = 16 if len(series) > 1 else 0
    pw, ph = width - left - right, height - top - bottom - legend_h

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - lo) / (hi - lo) * ph if hi > lo else top + ph / 2

    out = [_svg_open(width, height, title), f'<text class="ctitle" x="8" y="16">{escape(title)}</text>']
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
    for t in yt:
        y = sy(t)
        out.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{escape(format_value(t, unit))}</text>')
    for t in _time_ticks(x0, x1):
        x = sx(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{top + ph + 13}" text-anchor="middle">{_fmt_time(t, x1 - x0)}</text>')
    out.append(f'<text class="muted" x="{left + pw:.0f}" y="{top + ph + 26}" text-anchor="end">UTC</text>')
    for xv, label in vlines:
        if _ok(xv) and x0 <= xv <= x1:
            x = sx(float(xv))
            out.append(
                f'<line class="event" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}"><title>{escape(label)}</title></line>'
            )
    if hline is not None and _ok(hline[0]) and lo <= hline[0] <= hi:
        y = sy(float(hline[0]))
        out.append(
            f'<line class="threshold" x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}"><title>{escape(hline[1])}</title></line>'
        )
    for name, values in series.items():
        color = colors[name]
        # break the line where values are missing
        segments: List[List[Tuple[float, float]]] = [[]]
        for x, y in values:
            if _ok(x) and _ok(y):
                segments[-1].append((float(x), float(y)))
            elif segments[-1]:
                segments.append([])
        for seg in segments:
            if not seg:
                continue
            d = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(seg))
            out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2" class="series"/>')
            if len(seg) <= 60:
                for x, y in seg:
                    out.append(
                        f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}">'
                        f"<title>{escape(name)} {_fmt_time(x, 0)}: {escape(format_value(y, unit))}</title></circle>"
                    )
        for mx in (markers or {}).get(name, ()):
            hit = [p for p in pts[name] if p[0] == mx]
            for x, y in hit:
                out.append(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4.5" class="alarm"><title>{escape(name)}: drift detected</title></circle>'
                )
    if legend_h:
        lx = left
        ly = height - 8
        for name in series:
            out.append(f'<rect x="{lx}" y="{ly - 9}" width="12" height="4" fill="{colors[name]}"/>')
            out.append(f'<text class="legend" x="{lx + 16}" y="{ly - 4}">{escape(name)}</text>')
            lx += 24 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


TICK_CHAR_WIDTH = 6.5
"""At most this many pixels per character of a tick label (10 px DejaVu Sans / Helvetica)."""


def _axis_labels(labels: Sequence[str], left: float, bw: float, width: float, gap: float = 6.0) -> List[Tuple[float, str]]:
    """The x-axis labels of ``len(labels)`` bins of width ``bw``: every k-th label, whole, with
    the smallest k at which no two neighbours overlap, and each kept inside the chart.

    >>> [t for _, t in _axis_labels(["0–10", "10–20", "20–30", "30–40", "40–50"], 44, 17, 460)]
    ['0–10', '30–40']
    """
    n = len(labels)
    if n == 0:
        return []
    widths = [len(t) * TICK_CHAR_WIDTH for t in labels]
    k = 1
    while k < n:
        shown = range(0, n, k)
        if all((widths[i] + widths[i + k]) / 2 + gap <= k * bw for i in shown if i + k < n):
            break
        k += 1
    out = []
    for i in range(0, n, k):
        half = widths[i] / 2
        x = min(max(left + (i + 0.5) * bw, half + 1), width - half - 1)
        if out and x - out[-1][0] < (widths[i] + len(out[-1][1]) * TICK_CHAR_WIDTH) / 2 + gap:
            continue  # pushed back inside the chart onto its neighbour: leave it out
        out.append((x, labels[i]))
    return out


def histogram_pair(
    labels: Sequence[str],
    reference: Sequence[float],
    current: Optional[Sequence[float]],
    *,
    title: str = "",
    width: int = 460,
    height: int = 190,
    subtitle: str = "",
) -> str:
    """Reference and current distributions over the same bins, as shares, bars side by side."""
    ref = [float(c) if _ok(c) else 0.0 for c in reference]
    cur = [float(c) if _ok(c) else 0.0 for c in (current or [])]
    rs, cs = sum(ref), sum(cur)
    if not ref or rs <= 0:
        return empty_chart(title, "no reference distribution", width=width, height=height)
    rshare = [c / rs for c in ref]
    cshare = [c / cs for c in cur] if cs > 0 else []
    n = len(rshare)
    hi = max(rshare + cshare) or 1.0
    yt = nice_ticks(0.0, hi, 4)
    hi = yt[-1]
    left, right, top, bottom = 44, 8, 26, 42
    pw, ph = width - left - right, height - top - bottom
    bw = pw / n
    out = [_svg_open(width, height, title), f'<text class="ctitle" x="8" y="16">{escape(title)}</text>']
    if subtitle:
        out.append(f'<text class="muted" x="{width - 8}" y="16" text-anchor="end">{escape(subtitle)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
    for t in yt:
        y = top + ph - t / hi * ph
        out.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{t * 100:.0f}%</text>')
    inner = 0.42 if cshare else 0.8
    for i in range(n):
        x = left + i * bw
        h = rshare[i] / hi * ph
        out.append(
            f'<rect x="{x + bw * 0.08:.1f}" y="{top + ph - h:.1f}" width="{max(bw * inner, 0.8):.1f}" height="{h:.1f}" '
            f'fill="{REFERENCE_COLOR}"><title>{escape(labels[i] if i < len(labels) else "")}: reference {rshare[i]:.1%}</title></rect>'
        )
        if cshare and i < len(cshare):
            h2 = cshare[i] / hi * ph
            out.append(
                f'<rect x="{x + bw * (0.08 + inner):.1f}" y="{top + ph - h2:.1f}" width="{max(bw * inner, 0.8):.1f}" height="{h2:.1f}" '
                f'fill="{CURRENT_COLOR}"><title>{escape(labels[i] if i < len(labels) else "")}: current {cshare[i]:.1%}</title></rect>'
            )
    for x, lab in _axis_labels(labels[:n], left, bw, width):
        out.append(f'<text class="tick" x="{x:.1f}" y="{top + ph + 13}" text-anchor="middle">{escape(lab)}</text>')
    ly = height - 8
    out.append(f'<rect x="{left}" y="{ly - 9}" width="10" height="10" fill="{REFERENCE_COLOR}"/>')
    out.append(f'<text class="legend" x="{left + 14}" y="{ly}">reference</text>')
    if cshare:
        out.append(f'<rect x="{left + 90}" y="{ly - 9}" width="10" height="10" fill="{CURRENT_COLOR}"/>')
        out.append(f'<text class="legend" x="{left + 104}" y="{ly}">current</text>')
    else:
        out.append(f'<text class="muted" x="{left + 90}" y="{ly}">no current traffic</text>')
    out.append("</svg>")
    return "".join(out)
