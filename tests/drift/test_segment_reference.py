"""Each segment tested against its own reference rows (raywatch.drift.segment_reference)."""

import numpy as np
import pytest

from raywatch.drift.segment_reference import META_KEY, fit_segment_reference, segment_profile, segment_references
from raywatch.drift.segmented import evaluate_segments
from raywatch.stats.grouped import summarize_segments
from raywatch.stats.labels import OTHER
from raywatch.stats.profile import Profile

SHOPS = ["grocery", "electronics", "travel", "pharmacy"]
MEDIAN = {"grocery": 25.0, "electronics": 400.0, "travel": 300.0, "pharmacy": 30.0}


def _data(rng, n, drift_in=None):
    shop = rng.choice(SHOPS, n, p=[0.4, 0.2, 0.2, 0.2])
    amount = np.array([MEDIAN[s] for s in shop]) * rng.lognormal(0.0, 0.5, n)
    hour = rng.integers(0, 24, n).astype(float)
    if drift_in is not None:
        amount = np.where(shop == drift_in, amount * 3.0, amount)
    return {"amount": amount, "hour": hour, "shop": shop}


@pytest.fixture(scope="module")
def profiles():
    ref = _data(np.random.default_rng(0), 40_000)
    plain = Profile.fit(ref, seed=0)
    own = fit_segment_reference(Profile.from_bytes(plain.to_bytes()), ref, ["shop"], seed=0)
    return plain, own


def _window(profile, seed, drift_in=None, n=8000):
    d = _data(np.random.default_rng(seed), n, drift_in)
    return summarize_segments(profile, {"amount": d["amount"], "hour": d["hour"]}, {"shop": d["shop"]}, seed=seed)


def _flagged(profile, summaries):
    return {v.segment: v.drift.drifted_columns for v in evaluate_segments(profile, summaries)["shop"]}


def test_against_the_population_every_segment_with_its_own_distribution_is_flagged(profiles):
    plain, _ = profiles
    flagged = _flagged(plain, _window(plain, 1))
    assert all(flagged[s] == ["amount"] for s in SHOPS)  # what a population reference says of a stationary window


def test_against_its_own_reference_a_stationary_segment_is_quiet_and_a_drifted_one_is_named(profiles):
    _, own = profiles
    assert all(cols == [] for cols in _flagged(own, _window(own, 2)).values())
    flagged = _flagged(own, _window(own, 3, drift_in="travel"))
    assert flagged.pop("travel") == ["amount"]
    assert all(cols == [] for cols in flagged.values())
    verdicts = evaluate_segments(own, _window(own, 3))["shop"]
    assert {v.reference for v in verdicts} == {"segment"}
    assert verdicts[0].to_dict()["reference"] == "segment"


def test_values_without_a_reference_and_other_fall_back_to_the_population(profiles):
    _, own = profiles
    rng = np.random.default_rng(4)
    d = _data(rng, 4000)
    shop = np.where(rng.random(4000) < 0.25, "bakery", d["shop"])  # a value the reference never had
    seg = summarize_segments(own, {"amount": d["amount"], "hour": d["hour"]}, {"shop": shop}, k=3, seed=0)
    refs = {v.segment: v.reference for v in evaluate_segments(own, seg)["shop"]}
    assert refs[OTHER] == "population" and refs.get("bakery", "population") == "population"
    assert "segment" in refs.values()
    assert segment_profile(own, "shop", OTHER) is None and segment_profile(own, "shop", "bakery") is None
    assert segment_profile(own, "country", "fr") is None


def test_the_references_travel_with_the_profile_bytes_and_a_damaged_one_costs_only_its_column(profiles, tmp_path):
    _, own = profiles
    back = Profile.from_bytes(own.to_bytes())
    assert back.fingerprint == own.fingerprint
    refs = segment_references(back)["shop"]
    assert sorted(refs) == sorted(SHOPS)
    assert refs["grocery"] == segment_references(own)["shop"]["grocery"]
    view = segment_profile(back, "shop", "grocery")
    assert view.fingerprint == back.fingerprint and view.extensions == {} and view.reference is refs["grocery"]
    assert segment_profile(back, "shop", "grocery") is view  # made once
    assert back.reference.rows == 40_000 and view.reference.rows < 40_000
    damaged = Profile.from_bytes(own.to_bytes())
    damaged.meta[META_KEY] = {"columns": {"shop": {"format": "nonsense"}}}
    assert segment_references(damaged) == {}
    seg = _window(damaged, 5)
    assert {v.reference for v in evaluate_segments(damaged, seg)["shop"]} == {"population"}


def test_summaries_of_another_profile_are_not_taken_as_references(profiles):
    plain, own = profiles
    other = Profile.fit(_data(np.random.default_rng(9), 5000), seed=1)
    foreign = fit_segment_reference(other, _data(np.random.default_rng(9), 5000), ["shop"], seed=0)
    mixed = Profile.from_bytes(plain.to_bytes())
    mixed.meta[META_KEY] = foreign.meta[META_KEY]
    assert segment_references(mixed) == {}


def test_fit_names_a_missing_column():
    ref = _data(np.random.default_rng(0), 1000)
    with pytest.raises(KeyError, match="country"):
        fit_segment_reference(Profile.fit(ref, seed=0), ref, ["country"])


def test_profile_build_keeps_segment_references(tmp_path):
    from click.testing import CliRunner

    from raywatch.cli import main

    d = _data(np.random.default_rng(0), 3000)
    src = tmp_path / "ref.csv"
    with src.open("w") as fh:
        fh.write("amount,hour,shop\n")
        for a, h, s in zip(d["amount"], d["hour"], d["shop"]):
            fh.write(f"{a},{h},{s}\n")
    out = tmp_path / "ref.profile"
    res = CliRunner().invoke(main, ["profile", "build", str(src), "-o", str(out), "--segment", "shop"])
    assert res.exit_code == 0, res.output
    assert "segment reference shop: 4 value(s) (electronics, grocery, pharmacy, travel)" in res.output
    assert sorted(segment_references(Profile.load(out))["shop"]) == sorted(SHOPS)
    res = CliRunner().invoke(main, ["profile", "show", str(out)])
    assert res.exit_code == 0 and "segment reference shop: 4 value(s)" in res.output, res.output
    res = CliRunner().invoke(main, ["profile", "build", str(src), "-o", str(out), "--segment", "country"])
    assert res.exit_code != 0 and "--segment" in res.output and "country" in res.output
    res = CliRunner().invoke(main, ["profile", "build", str(tmp_path), "-o", str(out), "--segment", "shop"])
    assert res.exit_code != 0 and "segment references" in res.output
