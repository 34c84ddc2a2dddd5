"""The report's issue-13 section, from a real stats actor history (StatsCore with a SQLite store):
estimated against realized performance with the disagreeing windows ringed, the reliability
curve and ECE, multivariate drift, which figures are exact and which are bounds, and the
false-alarm rates in time."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aggregate"))

from test_estimation_core import KEY, T0, batch, world  # noqa: E402

from raywatch.aggregate import StatsCore, Store  # noqa: E402
from raywatch.config import MonitorConfig  # noqa: E402
from raywatch.report import render_report  # noqa: E402
from raywatch.report.estimation import estimation_section, reliability_chart  # noqa: E402
from raywatch.stats.profile import Profile  # noqa: E402


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows, y = world(5000, rng)
    prof = Profile.fit(dict(rows, label=y), performance={"target": "label", "scores": "score", "prediction": "prediction"},
                       correlation=True, pca=True, seed=0)
    cfg = MonitorConfig(windows={"length": 10, "rolling": 1, "grace": 0}, actor={"sqlite_path": None},
                        alerting={"watchdog": False}, drift={"expected_run_time": "7d"})
    c = StatsCore(cfg, Store(str(tmp_path_factory.mktemp("h") / "s.sqlite")))
    c.register_model(KEY, cfg, prof.to_bytes())
    for k, concept in enumerate([False, False, False, True, True]):
        rows, y = world(800, rng, concept=concept)
        c.ingest(batch(prof, rows, k + 1, T0 + 10 * k + 2), now=T0 + 10 * k + 2)
        for i, label in enumerate(y.tolist()):
            c.feedback(f"r{k + 1}-{i}", label, now=T0 + 10 * k + 3)
        c.evaluate(now=T0 + 10 * k + 5)
    c.evaluate(now=T0 + 60)
    return c.history()


def test_history_carries_the_calibration_and_the_false_alarm_rates(history):
    m = history["models"][KEY]
    cal = m["estimation"]["calibrations"][0]
    assert cal["score"] == "score" and cal["method"] in ("isotonic", "platt", "identity")
    assert len(cal["curve"]["predicted"]) == len(cal["curve"]["observed"]) > 3
    assert m["false_alarms"]["text"] == "α 1.7e-05 per evaluation every 10 s: at most one false alarm per 7 days per test"
    assert [bool((w.get("disagreement") or {}).get("accuracy", {}).get("disagree")) for w in m["windows"]] == \
        [False, False, False, True, True]


def test_the_section_draws_estimate_band_realized_calibration_multivariate_figures_and_time(history):
    page = render_report(history)
    assert "<script" not in page
    for heading in ("Estimated against realized performance", "Calibration of the scores (reference)", "Multivariate drift",
                    "Which figures are exact and which are bounds", "False alarms in time"):
        assert f"<h3>{heading}</h3>" in page, heading
    section = page[page.index("<h3>Estimated against realized performance</h3>"):]
    assert 'aria-label="accuracy: estimated (band) vs realized (red ring: disagree)"' in section
    accuracy = re.search(r'aria-label="accuracy: estimated.*?</svg>', section).group(0)
    assert accuracy.count('class="alarm"') == 2  # the two windows under concept drift
    assert "reliability of score" in section and "ECE" in section
    assert "PCA reconstruction error" in section and "largest correlation change" in section
    assert "bound: binned KS" in section  # 800-row windows against a 5,000-row reference
    assert "at most one false alarm per 7 days per test" in section and "drift.expected_run_time" in section


def test_nothing_to_show_is_no_section_and_no_curve_is_said():
    assert estimation_section({"windows": []}, [], []) == ""
    assert "no reliability curve" in reliability_chart({}, title="x")
