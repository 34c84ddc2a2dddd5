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


def _with_untested_and_quality_issues() -> dict:
    h = make_history()
    last = h["models"]["fraud/FraudModel"]["windows"][-1]
    last["drift"]["merchant_category"] = {
        "method": "chisquare", "statistic": None, "p_value": None, "p_value_adjusted": None, "drifted": False,
        "tested": False, "reason": "wrong_type", "observed_types": {"int": 2000}, "expected_type": "a string",
        "why": "wrong type: got int in 2000 of 2000 rows, expected a string",
    }
    last["drift"]["card_present"] = {
        "method": "ztest", "statistic": None, "p_value": None, "drifted": False, "tested": False, "reason": "redacted",
        "redacted_by": "card_*", "why": "redacted by the capture.redact rule 'card_*': raywatch never sees it",
    }
    last["drift"]["amount"]["p_value_adjusted"] = 4e-9
    last["quality"] = {
        "merchant_category": {"wrong_type_share": 1.0, "wrong_type_share_reference": 0.0, "issues": ["wrong_type_share"]},
        "card_present": {"missing_share": 1.0, "missing_share_reference": 0.0, "issues": ["missing_share"]},
        "hour": {"missing_share": 0.0, "issues": []},
    }
    return h


def _card(page: str, feature: str) -> str:
    start = page.index(f'aria-label="{feature}"')
    return page[start:page.index("</div></div>", start)]


def test_report_says_why_a_feature_was_not_tested_and_shows_quality_issues():
    page = render_report(_with_untested_and_quality_issues())
    cat = _card(page, "merchant_category")
    assert '<span class="badge na">not tested</span>' in cat
    assert "wrong type: got int in 2000 of 2000 rows, expected a string" in cat
    assert "data quality: wrong_type_share 100% (reference 0%)" in cat
    card = _card(page, "card_present")
    assert "redacted by the capture.redact rule &#x27;card_*&#x27;" in card
    assert "data quality: missing_share 100% (reference 0%)" in card
    # a tested feature: the verdict with the p-value that decides it, named
    amount = _card(page, "amount")
    assert '<span class="badge drift">drift</span>' in amount and "p_adj 4.00e-09" in amount
    assert "data quality" not in _card(page, "hour")
    # the latest verdict of a feature is its latest test, not an older one
    assert "not tested yet" not in page


def test_report_says_when_a_model_has_no_reference_profile():
    h = {"models": {"a/B": {"labels": {}, "features": {}, "windows": [
        {"start": 0, "end": 10, "requests": 5, "drift": {}, "drift_note": "no reference profile"}]}}, "alerts": []}
    page = render_report(h)
    assert "No reference profile registered for this model" in page


def _x_labels(svg_text: str):
    """The x-axis labels of a histogram: (x, text) of each tick text below the plot."""
    top = 26
    ticks = re.findall(r'<text class="tick" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', svg_text)
    ys = [float(y) for _, y, _ in ticks]
    axis_y = max(ys)
    assert axis_y > top
    import html

    return [(float(x), html.unescape(t)) for x, y, t in ticks if float(y) == axis_y]


def test_histogram_axis_labels_are_whole_and_spaced():
    """The score column of the fraud model (log-spaced bins from 1e-3 to 0.6): its labels were
    cut with "…" and overlapped (`≤9.84e-04 0.00237–0.0…`)."""
    from deployments.fraud import reference_profile

    from raywatch.report import svg
    from raywatch.report.bins import display_hist

    prof = reference_profile()
    for name in ("probability", "account_age_days", "merchant_category", "amount"):
        h = prof.histogram(name)
        labels, rc, cc = display_hist(h, h)
        chart = svg.histogram_pair(labels, rc, cc, title=name)
        shown = _x_labels(chart)
        assert len(shown) >= 2, name
        assert all("…" not in t and t in labels for _, t in shown), shown
        for (x0, t0), (x1, t1) in zip(shown, shown[1:]):
            # at most 6.5 px per character at the tick's 10 px font, 4 px apart
            assert x1 - x0 >= (len(t0) + len(t1)) * 6.5 / 2 + 4, (name, t0, t1, x1 - x0)
        assert shown[0][0] - len(shown[0][1]) * 6.5 / 2 >= 0 and shown[-1][0] + len(shown[-1][1]) * 6.5 / 2 <= 460


# every histogram's x-axis tick labels (the lowest row of tick texts), as rendered boxes
_LABEL_BOXES_JS = """
Array.from(document.querySelectorAll('.feat svg.chart')).map(svg => {
  const ticks = Array.from(svg.querySelectorAll('text.tick'));
  const y = Math.max(...ticks.map(t => +t.getAttribute('y')));
  const chart = svg.getBoundingClientRect();
  return {name: svg.getAttribute('aria-label'), left: chart.left, right: chart.right,
          labels: ticks.filter(t => +t.getAttribute('y') === y).map(t => {
            const r = t.getBoundingClientRect(); return {text: t.textContent, left: r.left, right: r.right};
          })};
})
"""


@pytest.mark.integration
def test_histogram_axis_labels_do_not_overlap_in_chromium(tmp_path, require_binary):
    """The fraud model's features and predictions (its score column has log-spaced bins from
    1e-3 to 0.6), rendered: no two x-axis labels of a histogram overlap, none is cut, all
    sit inside their chart. The screenshot is left in tmp_path/axis.png."""
    chromium = require_binary("chromium", "chromium-browser")
    from chromium_cdp import open_page

    from deployments.fraud import PREDICTIONS, reference_profile
    from deployments.fraud_data import FEATURES, generate_transactions

    prof = reference_profile()
    cols, _ = generate_transactions(3000, seed=3, drift={"amount": 3.0})
    summary = prof.summarize(cols)
    kinds = {**FEATURES, **PREDICTIONS}
    feats = {n: {"kind": kinds.get(n, ""), "reference": prof.histogram(n), "current": prof.histogram(n, summary)}
             for n in prof.columns}
    h = make_history()
    h["models"]["fraud/FraudModel"]["features"] = feats
    path = write_report(h, tmp_path / "report.html")
    res = open_page(chromium, path, width=1100, height=2400, expressions={"charts": _LABEL_BOXES_JS})
    (tmp_path / "axis.png").write_bytes(res.png)
    assert res.problems == []
    charts = res.values["charts"]
    assert {c["name"] for c in charts} == set(prof.columns) and "probability" in prof.columns
    for c in charts:
        labels = c["labels"]
        assert len(labels) >= 2, c
        assert all("…" not in lab["text"] for lab in labels), c
        assert labels[0]["left"] >= c["left"] and labels[-1]["right"] <= c["right"], c
        for a, b in zip(labels, labels[1:]):
            assert b["left"] - a["right"] >= 2, (c["name"], a, b)


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
