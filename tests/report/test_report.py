"""The HTML report: structure (fast, no browser) and rendering in headless Chromium."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from report_history import DRIFT_AT, SLOW_AT, T0, WINDOW, make_history  # noqa: E402

from raywatch.report import render_report, write_report  # noqa: E402
from raywatch.report.html import _alert_spans  # noqa: E402

EVENTS = [(T0 + DRIFT_AT * WINDOW, "drift injected"), (T0 + SLOW_AT * WINDOW, "latency regression")]


def test_report_is_self_contained_and_has_every_chart():
    page = render_report(make_history(), title="fraud demo", events=EVENTS)
    assert page.startswith("<!DOCTYPE html>")
    # nothing to fetch, nothing to run
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"(src|href)\s*=\s*[\"'](https?:)?//", page)
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}
    # one histogram pair per feature, plus drift heat strip + drift lines, 5 ops charts, performance, alert timeline
    assert page.count('aria-label="amount"') == 1 and page.count('aria-label="merchant_category"') == 1
    n_svg = page.count("<svg")
    assert n_svg == 4 + 2 + 5 + 1 + 1, n_svg
    # the drift badge is on amount only
    badges = re.findall(r'aria-label="([a-z_]+)".*?<span class="badge (\w+)">', page)
    assert dict(badges) == {"amount": "drift", "hour": "ok", "merchant_category": "ok", "card_present": "ok"}
    # drift markers: one red ring per drifted window of amount
    assert page.count('class="alarm"') == len(make_history()["models"]["fraud/FraudModel"]["windows"]) - DRIFT_AT
    # events are drawn as vertical lines
    assert page.count('class="event"') >= 2 * 5
    # text from alerts is escaped, not interpreted
    assert "errors <b>above</b>" not in page and "errors &lt;b&gt;above&lt;/b&gt;" in page


def test_alert_spans_pair_firing_and_resolved():
    lanes, spans = _alert_spans(make_history()["alerts"])
    assert len(lanes) == 3
    by_lane = {s[0].split(" ")[0]: s for s in spans}
    name, start, end, severity, _ = by_lane["ErrorRate"]
    assert (start, end, severity) == (T0 + 5 * WINDOW, T0 + 9 * WINDOW, "info")
    assert by_lane["FeatureDrift"][2] is None and by_lane["HighLatencyP95"][2] is None


def test_empty_history_renders_with_explanations():
    page = render_report({"models": {}, "alerts": []})
    assert "No model has reported" in page and "no alerts in this period" in page
    model_no_profile = {"models": {"a/B": {"labels": {}, "features": {}, "windows": []}}, "alerts": []}
    page = render_report(model_no_profile)
    assert "No reference profile registered" in page and "no data in this period" in page


def test_gpu_and_regression_metrics_are_drawn_when_present():
    h = make_history(gpu=True)
    for w in h["models"]["fraud/FraudModel"]["windows"]:
        w["performance"] = {"mae": 1.5, "rmse": 2.0}
    page = render_report(h)
    assert "GPU utilization %" in page and "regression metrics" in page and "classification metrics" not in page


def test_write_report_is_atomic(tmp_path):
    out = write_report(make_history(), tmp_path / "sub" / "report.html")
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def _near(img: np.ndarray, hex_color: str, tol: int = 30) -> int:
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img.astype(int) - rgb).sum(axis=2) < tol).sum())


@pytest.mark.integration
def test_report_renders_in_headless_chromium(tmp_path, require_binary):
    chromium = require_binary("chromium", "chromium-browser")
    from chromium_cdp import open_page
    from png_decode import decode_png

    # the checker itself catches a broken page
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("x"); nope();</script><img src="missing.png"></body></html>')
    assert len(open_page(chromium, bad, width=400, height=300).problems) == 3

    path = write_report(make_history(), tmp_path / "report.html", title="fraud demo", events=EVENTS)
    res = open_page(chromium, path, width=1100, height=3000, selectors={"svg": "svg.chart", "bars": "svg rect[fill='#E69F00']"})
    assert res.problems == []
    assert res.counts["svg"] == 13 and res.counts["bars"] > 20
    (tmp_path / "report.png").write_bytes(res.png)
    img = decode_png(res.png)
    assert img.shape == (3000, 1100, 3)
    # a rendered page: the dark header, many colours, and the chart strokes and bars
    assert _near(img[:40, :, :], "#13222F", 8) > 0.9 * 40 * 1100
    colours = np.unique(img[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 200
    assert _near(img, "#0072B2") > 5000  # reference bars, lines
    assert _near(img, "#E69F00") > 5000  # current bars
    assert _near(img, "#C0392B") > 500  # drift rings, critical alert bar
    assert _near(img, "#009E73") > 300  # third series (p99, f1, ...)
    # charts sit in the body, below the header: content in the lower half too
    lower = img[1500:2900]
    assert len(np.unique(lower[::4, ::4].reshape(-1, 3), axis=0)) > 100


def test_a_report_of_500_models_opens_with_the_table_and_sections_for_the_worst():
    """500 models: every one a row of the table, worst first; the 50 worst get a section."""
    import copy

    base = make_history()
    fraud = base["models"]["fraud/FraudModel"]
    models, alerts = {}, []
    for m in range(500):
        key = f"app/model-{m:03d}"
        one = copy.deepcopy(fraud)
        one["labels"] = dict(one["labels"], app="app", deployment=f"model-{m:03d}")
        for w in one["windows"]:
            w["drift"] = {} if m != 250 else w.get("drift", {})  # only model-250 drifts
            w["error_rate"] = 0.2 if m == 400 else 0.0
        models[key] = one
    alerts.append({"ts": T0 + 100.0, "alertname": "HighLatencyP95", "state": "firing", "severity": "critical",
                   "labels": {"alertname": "HighLatencyP95", "app": "app", "deployment": "model-123", "severity": "critical"}})
    html = render_report({"models": models, "alerts": alerts}, title="fleet", generated_at=T0 + 400)
    table = html[html.index('<h2 id="models">'):html.index("</table>", html.index('<h2 id="models">'))]
    names = re.findall(r"<tr><td>(?:<a [^>]*>)?(app/model-\d{3})", table)
    assert len(names) == 500 and len(set(names)) == 500
    assert names[:3] == ["app/model-123", "app/model-250", "app/model-400"]  # firing, drifting, erring
    sections = re.findall(r'<h2 id="m\d+">(app/model-\d{3})</h2>', html)
    assert sections == names[:50]
    assert '<a href="#m0">app/model-123</a>' in table and "app/model-499</td>" in table  # no section: no link
    assert "500 model(s)" in html
    few = render_report({"models": dict(list(models.items())[:3]), "alerts": []}, title="few", generated_at=T0)
    assert 'id="models"' not in few and len(re.findall(r'<h2 id="m\d+">', few)) == 3
