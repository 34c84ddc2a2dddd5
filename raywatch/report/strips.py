"""Lanes over time for the HTML report: the drift heat strip (features × windows) and the
alert timeline (one lane per alert). Inline SVG, built on :mod:`raywatch.report.svg`.

>>> "drift" in heat_strip(["age"], [0.0, 60.0], {"age": [0.5, 0.001]}, {"age": [False, True]}, title="drift")
True
>>> "firing" in timeline(["HighLatency"], [("HighLatency", 0.0, None, "warning", "tip")], t0=0.0, t1=60.0)
True
"""

from __future__ import annotations

from html import escape
from typing import Iterable, Mapping, Optional, Sequence, Tuple

from raywatch.report.svg import SEVERITY_COLORS, _fmt_time, _ok, _svg_open, _time_ticks, empty_chart, format_value

__all__ = ["heat_strip", "timeline"]


def heat_strip(
    rows: Sequence[str],
    starts: Sequence[float],
    values: Mapping[str, Sequence[Optional[float]]],
    flags: Mapping[str, Sequence[bool]],
    *,
    title: str = "",
    width: int = 940,
    value_label: str = "p-value",
) -> str:
    """A features × windows grid: darker = smaller p-value, red outline = drift detected."""
    if not rows or not starts:
        return empty_chart(title, width=width)
    left, right, top = 150, 30, 26
    cell_h = 18
    height = top + cell_h * len(rows) + 40
    pw = width - left - right
    cw = pw / len(starts)
    out = [_svg_open(width, height, title), f'<text class="ctitle" x="8" y="16">{escape(title)}</text>']
    for r, name in enumerate(rows):
        y = top + r * cell_h
        lab = name if len(name) <= 22 else name[:21] + "…"
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(lab)}</text>')
        vals = values.get(name, [])
        fl = flags.get(name, [])
        for c in range(len(starts)):
            v = vals[c] if c < len(vals) else None
            drifted = bool(fl[c]) if c < len(fl) else False
            if _ok(v):
                # p-value 1 -> pale, 0 -> dark
                strength = 1.0 - min(max(float(v), 0.0), 1.0) ** 0.35
                fill = f"rgb({int(235 - 200 * strength)},{int(242 - 150 * strength)},{int(250 - 60 * strength)})"
                tip = f"{name} {_fmt_time(starts[c], 0)}: {value_label} {format_value(v)}{' — drift' if drifted else ''}"
            else:
                fill, tip = "#f4f4f4", f"{name} {_fmt_time(starts[c], 0)}: not tested"
            stroke = ' stroke="#C0392B" stroke-width="2"' if drifted else ""
            out.append(
                f'<rect x="{left + c * cw + 0.5:.1f}" y="{y + 1}" width="{max(cw - 1, 0.6):.1f}" height="{cell_h - 2}" fill="{fill}"{stroke}>'
                f"<title>{escape(tip)}</title></rect>"
            )
    span = starts[-1] - starts[0] if len(starts) > 1 else 0
    for t in _time_ticks(starts[0], starts[-1]) if len(starts) > 1 else [starts[0]]:
        c = (t - starts[0]) / span * (len(starts) - 1) if span else 0
        x = left + (c + 0.5) * cw
        out.append(f'<text class="tick" x="{x:.1f}" y="{top + cell_h * len(rows) + 13}" text-anchor="middle">{_fmt_time(t, span)}</text>')
    ly = height - 8
    out.append(f'<rect x="{left}" y="{ly - 9}" width="10" height="10" fill="rgb(35,92,190)"/>')
    out.append(f'<text class="legend" x="{left + 14}" y="{ly}">small {escape(value_label)}</text>')
    out.append(f'<rect x="{left + 120}" y="{ly - 9}" width="10" height="10" fill="rgb(235,242,250)" stroke="#bbb"/>')
    out.append(f'<text class="legend" x="{left + 134}" y="{ly}">large {escape(value_label)}</text>')
    out.append(f'<rect x="{left + 240}" y="{ly - 9}" width="10" height="10" fill="none" stroke="#C0392B" stroke-width="2"/>')
    out.append(f'<text class="legend" x="{left + 254}" y="{ly}">drift detected</text>')
    out.append("</svg>")
    return "".join(out)


def timeline(
    lanes: Sequence[str],
    spans: Iterable[Tuple[str, float, Optional[float], str, str]],
    *,
    t0: float,
    t1: float,
    title: str = "",
    width: int = 940,
) -> str:
    """Alert lanes: each span is (lane, start, end or None = still firing, severity, tooltip)."""
    spans = list(spans)
    if not lanes or not spans:
        return empty_chart(title, "no alerts in this period", width=width, height=110)
    if t1 <= t0:
        t1 = t0 + 60
    left, right, top, lane_h = 200, 30, 26, 22
    height = top + lane_h * len(lanes) + 36
    pw = width - left - right

    def sx(x: float) -> float:
        return left + (min(max(x, t0), t1) - t0) / (t1 - t0) * pw

    out = [_svg_open(width, height, title), f'<text class="ctitle" x="8" y="16">{escape(title)}</text>']
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{lane_h * len(lanes)}" class="frame"/>')
    for t in _time_ticks(t0, t1):
        x = sx(t)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + lane_h * len(lanes)}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{top + lane_h * len(lanes) + 13}" text-anchor="middle">{_fmt_time(t, t1 - t0)}</text>')
    index = {lane: i for i, lane in enumerate(lanes)}
    for i, lane in enumerate(lanes):
        lab = lane if len(lane) <= 30 else lane[:29] + "…"
        out.append(f'<text class="tick" x="{left - 6}" y="{top + i * lane_h + 15}" text-anchor="end">{escape(lab)}</text>')
    for lane, start, end, severity, tip in spans:
        i = index[lane]
        x0 = sx(start)
        x1 = sx(end if end is not None else t1)
        color = SEVERITY_COLORS.get(str(severity).lower(), "#7F8C8D")
        opacity = ' opacity="0.75"' if end is not None else ""
        out.append(
            f'<rect x="{x0:.1f}" y="{top + i * lane_h + 4}" width="{max(x1 - x0, 3):.1f}" height="{lane_h - 8}" rx="3" fill="{color}"'
            f"{opacity}><title>{escape(tip)}</title></rect>"
        )
        if end is None:
            out.append(f'<text class="onbar" x="{x1 - 4:.1f}" y="{top + i * lane_h + 15}" text-anchor="end">firing</text>')
    ly = height - 6
    lx = left
    for sev in ("critical", "warning", "info"):
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{SEVERITY_COLORS[sev]}"/>')
        out.append(f'<text class="legend" x="{lx + 14}" y="{ly}">{sev}</text>')
        lx += 80
    out.append("</svg>")
    return "".join(out)
