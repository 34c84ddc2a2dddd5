"""``raywatch status``'s issue-13 block (estimated performance with its band, calibration quality,
realized against estimated, multivariate verdicts, false alarms in time), from a real StatsCore
view — and the sample of it in README.md is what these lines look like (numbers aside)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aggregate"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "readme"))

from readme_blocks import number_pattern, of_kind  # noqa: E402
from test_estimation_core import T0, batch, world  # noqa: E402

from raywatch.aggregate import StatsCore  # noqa: E402
from raywatch.cli.status import estimation_lines, status_lines  # noqa: E402
from raywatch.config import MonitorConfig  # noqa: E402
from raywatch.stats.profile import Profile  # noqa: E402

KEY = "app/M"


@pytest.fixture(scope="module")
def lines():
    rng = np.random.default_rng(0)
    rows, y = world(5000, rng)
    prof = Profile.fit(dict(rows, label=y), performance={"target": "label", "scores": "score", "prediction": "prediction"},
                       correlation=True, pca=True, outliers=True, seed=0)
    cfg = MonitorConfig(windows={"length": 10, "rolling": 3, "grace": 0}, actor={"sqlite_path": None},
                        alerting={"watchdog": False}, drift={"expected_run_time": "30d"},
                        detectors={"concept": {"method": "adwin", "expected_run_time": "30d", "reference_values": 200,
                                               "calibration_budget": 100_000}})
    c = StatsCore(cfg)
    c.register_model(KEY, cfg, prof.to_bytes())
    for k, concept in enumerate([False, False, True]):
        rows, y = world(1000, rng, concept=concept)
        c.ingest(batch(prof, rows, k + 1, T0 + 10 * k + 2), now=T0 + 10 * k + 2)
        for i, label in enumerate(y.tolist()):
            c.feedback(f"r{k + 1}-{i}", label, now=T0 + 10 * k + 3 + i * 0.005)
    assert c.models[KEY].calibrations.wait(timeout=60)
    st = c.evaluate(now=T0 + 25)
    return [click.unstyle(line) for line in estimation_lines(st["models"][KEY])], st


def test_the_block_says_estimate_band_calibration_disagreement_verdicts_and_time(lines):
    out, st = lines
    assert out[0].startswith("  estimated (3,000 rows, no labels; band ±3 SE; assumes no concept drift): accuracy 0.")
    assert re.search(r"roc_auc 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", out[0])
    assert re.fullmatch(r"  calibration: ECE 0\.0\d\d", out[1])
    assert "DISAGREE (concept drift?): accuracy " in out[2] and "(3,000 labels)" in out[2]
    assert out[3].startswith("  multivariate: correlation ok (max change ") and "reconstruction ok (error " in out[3]
    assert "drift tests α 3.9e-06 per evaluation every 10 s: at most one false alarm per 30 days per test" in out[4]
    assert "; detectors: concept one false alarm per 30 days (delta=" in out[4]
    assert "extrapolated beyond the simulation" in out[4]
    # the block sits in the model's status lines, after performance
    whole = [click.unstyle(x) for x in status_lines(st)]
    assert whole.index(out[0]) == next(i for i, x in enumerate(whole) if x.startswith("  performance: ")) + 1


def test_a_model_without_extensions_adds_no_line():
    assert estimation_lines({"rolling": {"false_alarms": {"text": "α 0.05 …", "expected_run_time": None}}}) == []


def test_the_readme_sample_is_what_status_prints(lines):
    out, _ = lines
    (block,) = [b for b in of_kind("output", "sample") if "test_status_estimation.py" in b.opts.get("covered-by", "")]
    sample = block.text.rstrip("\n").split("\n")
    assert len(sample) == len(out)
    for want, got in zip(sample, out):
        assert re.fullmatch(number_pattern(want), got), (want, got)
