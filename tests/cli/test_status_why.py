"""``raywatch status`` and the evaluation it shows say why a column was not tested, show the
data-quality issues next to the drift verdicts, and show the p-value that decides (the
adjusted one, named ``p_adj``). Without Ray: a real profile, real window summaries and the
stats actor's core (:class:`raywatch.aggregate.StatsCore`).

The replicas' own words about columns (``redacted``: column → the ``capture.redact`` pattern;
``wrong_types``: column → observed type → count) are optional fields of a replica batch,
carried by the window aggregates. Until the batch carries them (the "replica" and "store"
work), these tests put them on the window as the ingest will; the test at the end sends them
in a batch and is marked as depending on that merge.
"""

from __future__ import annotations

import dataclasses

import click
import numpy as np
import pytest

from raywatch import series
from raywatch.aggregate import StatsCore
from raywatch.aggregate.model_series import model_series
from raywatch.cli.status import status_lines
from raywatch.config import MonitorConfig
from raywatch.stats.batch import ReplicaBatch
from raywatch.stats.profile import Profile
from raywatch.stats.sketch import LatencySketch

T0 = 2_000_000.0
N = 200
KEY = "shop/Fraud"


def _reference(n: int = 3000) -> dict:
    rng = np.random.default_rng(0)
    return {
        "amount": rng.lognormal(3.0, 0.5, n),
        "hour": rng.integers(0, 24, n).astype(float),
        "zip": rng.choice([75001, 75002, 69001], n),  # categories that are numbers (`--kind zip=categorical`)
        "card_present": rng.random(n) < 0.7,
        "country": rng.choice(["de", "fr", "us"], n),
        "age": rng.normal(40.0, 10.0, n),
    }


@pytest.fixture(scope="module")
def profile() -> Profile:
    return Profile.fit(_reference(), kinds={"zip": "categorical"}, seed=0)


def _rows(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append({
            "amount": float(rng.lognormal(3.0, 0.5)),
            "hour": float(rng.integers(0, 24)) if i < 10 else None,  # 10 usable values: too few to test
            "zip": str(rng.choice(["75001", "75002", "69001"])),  # production JSON sends strings
            # card_present: redacted in the replica (capture.redact: ["card_*"]), so absent
            "country": str(rng.choice(["de", "fr", "us"], p=[0.2, 0.2, 0.6])),  # shifted, tested
            "age": "unknown",  # a string where the model reads a number: wrong type
        })
    return out


def _batch(profile: Profile, seq: int = 1, **extra) -> ReplicaBatch:
    sk = LatencySketch()
    sk.add_many(np.full(N, 0.01))
    return ReplicaBatch(app="shop", deployment="Fraud", model="fraud", version="v1", replica_id="r1",
                        start_ts=T0 + 1, end_ts=T0 + 2, requests=N, latency=sk.to_dict(),
                        summary=profile.summarize(_rows(N, seq), seed=seq).to_bytes(), seq=seq, **extra)


def _core(profile: Profile) -> StatsCore:
    cfg = MonitorConfig(model="fraud", windows={"length": 10.0, "rolling": 3, "grace": 0.0, "evaluation_interval": 1.0},
                        actor={"sqlite_path": None})
    core = StatsCore(cfg)
    core.register_model(KEY, {"model": "fraud", "version": "v1"}, profile.to_bytes())
    return core


REDACTED = {"card_present": "card_*"}
WRONG_TYPES = {"age": ["str"]}  # as a replica batch carries it: the type names seen


def _evaluated(profile: Profile, notes: bool = True) -> dict:
    core = _core(profile)
    assert core.ingest(_batch(profile), now=T0 + 3) == "ok"
    if notes:  # what the ingest of a batch with these fields leaves on its window
        (w,) = core.models[KEY].open.values()
        w.add_notes(REDACTED, WRONG_TYPES)
    core.evaluate(now=T0 + 4)
    return core.status(KEY)


def test_untested_columns_keep_their_entry_with_the_reason(profile):
    cols = _evaluated(profile)["models"][KEY]["drift"]["columns"]
    assert set(cols) == set(profile.columns)
    assert "tested" not in cols["country"] and "tested" not in cols["amount"]  # tested: the entry as before
    # categories that are numbers meet production JSON's strings ("75001"): tested
    assert "tested" not in cols["zip"]
    age = cols["age"]
    assert age["tested"] is False and age["reason"] == "wrong_type"
    assert age["observed_types"] == {"str": 1} and age["expected_type"] == "a number"
    assert age["why"] == f"wrong type: got str in {N} of {N} rows, expected a number"
    card = cols["card_present"]
    assert (card["tested"], card["reason"], card["redacted_by"]) == (False, "redacted", "card_*")
    assert "redacted by the capture.redact rule 'card_*'" in card["why"]
    hour = cols["hour"]
    assert (hour["tested"], hour["reason"]) == (False, "missing")
    assert hour["why"] == f"missing in {N - 10} of {N} rows (10 usable values, fewer than drift.min_rows=30)"


def test_without_the_replicas_notes_the_reason_comes_from_the_counts(profile):
    cols = _evaluated(profile, notes=False)["models"][KEY]["drift"]["columns"]
    assert cols["age"]["reason"] == "wrong_type" and cols["age"]["why"].startswith(f"wrong type: got another type in {N} of {N} rows")
    assert cols["card_present"]["reason"] == "missing" and cols["card_present"]["why"] == f"missing in {N} of {N} rows"


def test_untested_columns_give_no_drift_series(profile):
    core = _core(profile)
    core.ingest(_batch(profile), now=T0 + 3)
    core.evaluate(now=T0 + 4)
    ms = core.models[KEY]
    per_feature = {series.DRIFT_SCORE.name, series.DRIFT_P_VALUE.name, series.DRIFT_DETECTED.name}
    features = {s.labels["feature"] for s in model_series(ms, ms.view["rolling"]) if s.name in per_feature}
    assert features == {"amount", "country", "zip"}


def test_status_lines_say_why_and_show_the_deciding_p_value(profile):
    text = click.unstyle("\n".join(status_lines(_evaluated(profile))))
    assert "age untested: wrong type: got str in 200 of 200 rows, expected a number" in text
    assert "card_present untested: redacted by the capture.redact rule 'card_*'" in text
    assert "hour untested: missing in 190 of 200 rows (10 usable values, fewer than drift.min_rows=30)" in text
    # the verdict comes with the p-value that decides it, named: the adjusted one
    assert "country DRIFT (p_adj=" in text and "amount ok (p_adj=" in text
    assert "(p=" not in text
    # quality issues sit next to the drift verdicts
    lines = text.splitlines()
    (quality,) = [x for x in lines if x.startswith("  quality: ")]
    assert "age wrong_type_share 100%" in quality and "hour missing_share 95%" in quality
    assert lines.index(quality) == max(i for i, x in enumerate(lines) if x.startswith(("  drift", "    ")) ) + 1


def test_status_says_when_there_is_no_reference_profile():
    cfg = MonitorConfig(windows={"length": 10.0, "rolling": 3, "grace": 0.0}, actor={"sqlite_path": None})
    core = StatsCore(cfg)
    core.register_model(KEY, {"model": "fraud"}, None)
    sk = LatencySketch()
    sk.add_many([0.01] * 5)
    core.ingest(ReplicaBatch(app="shop", deployment="Fraud", replica_id="r1", start_ts=T0, end_ts=T0 + 1, requests=5,
                             latency=sk.to_dict(), seq=1), now=T0 + 2)
    core.evaluate(now=T0 + 3)
    text = click.unstyle("\n".join(status_lines(core.status(KEY))))
    assert "drift: not tested — no reference profile" in text


_BATCH_FIELDS = {f.name for f in dataclasses.fields(ReplicaBatch)}


def test_reasons_from_a_batch_that_carries_the_replicas_notes(profile):
    core = _core(profile)
    assert core.ingest(_batch(profile, redacted=dict(REDACTED), wrong_types=dict(WRONG_TYPES)), now=T0 + 3) == "ok"
    core.evaluate(now=T0 + 4)
    cols = core.status(KEY)["models"][KEY]["drift"]["columns"]
    assert cols["card_present"]["reason"] == "redacted" and cols["age"]["observed_types"] == {"str": 1}


def test_the_readme_sample_is_what_status_prints(profile):
    """README.md shows these lines (the block marked ``covered-by=tests/cli/test_status_why.py``)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    m = re.search(r"<!-- test: output sample covered-by=tests/cli/test_status_why.py -->\n```text\n(.*?)```", readme, re.S)
    assert m
    real = click.unstyle("\n".join(status_lines(_evaluated(profile)))).splitlines()
    for line in m.group(1).splitlines():
        assert line in real, (line, real)
