import json

import numpy as np
import pytest

from raywatch.drift import detect_drift
from raywatch.drift.attribution import PredictionByBin, attribute_shift
from raywatch.stats.profile import Profile


def _score(x1):
    return 1.0 / (1.0 + np.exp(-1.5 * x1))


def _setup(seed=0, n_ref=20_000):
    rng = np.random.default_rng(seed)
    ref = {"x1": rng.normal(size=n_ref), "x2": rng.normal(size=n_ref), "x3": rng.normal(size=n_ref)}
    ref["prediction"] = _score(ref["x1"])
    profile = Profile.fit(ref, seed=seed)
    table = PredictionByBin(profile)
    table.update(ref)
    return rng, profile, table


def _window(profile, rng, flushes, n, shift1, shift2, model=_score):
    """Replica flushes, each tabulated and merged as the actor would."""
    merged, rows = None, []
    for _ in range(flushes):
        cur = {"x1": rng.normal(shift1, 1.0, n), "x2": rng.normal(shift2, 1.0, n), "x3": rng.normal(size=n)}
        cur["prediction"] = model(cur["x1"])
        t = PredictionByBin(profile)
        t.update(cur)
        merged = t if merged is None else merged.merge(t)
        rows.append(cur)
    return merged, {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def test_of_two_drifted_features_the_one_the_model_uses_ranks_first_clearly():
    rng, profile, reference = _setup()
    window, cur = _window(profile, rng, flushes=5, n=1000, shift1=0.7, shift2=0.7)
    drift = detect_drift(profile, cur)
    assert {"x1", "x2", "prediction"} <= set(drift.drifted_columns)  # both features drifted alike
    result = attribute_shift(reference, window, [c for c in drift.drifted_columns if c != "prediction"])
    first, second = result.features
    assert (first.feature, second.feature) == ("x1", "x2")
    ref_rows, ref_sum = reference.cells("x1")[0].sum(), reference.cells("x1")[1].sum()
    assert result.shift == pytest.approx(cur["prediction"].mean() - ref_sum / ref_rows, abs=1e-12)
    assert first.share > 0.85 and first.explains and first.significant
    assert abs(second.share) < 0.05 and not second.explains and not second.significant
    assert abs(first.explained) > 10 * abs(second.explained)
    assert result.explaining == ["x1"]
    json.dumps(result.to_dict())


def test_a_model_change_with_stable_inputs_is_left_in_the_conditional_part():
    rng, profile, reference = _setup(1)
    window, _ = _window(profile, rng, flushes=2, n=2000, shift1=0.0, shift2=0.0, model=lambda x: _score(x + 0.8))
    result = attribute_shift(reference, window)
    assert result.shift > 0.1
    assert result.explaining == []
    for f in result.features:
        assert abs(f.share) < 0.1 and f.conditional == pytest.approx(result.shift - f.explained)


def test_a_categorical_feature_and_a_label_prediction():
    rng = np.random.default_rng(2)
    n = 20_000
    ref = {"plan": rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1]), "age": rng.normal(40, 10, n)}
    ref["label"] = np.where(np.isin(ref["plan"], ["pro", "team"]), "churn", "stay")
    profile = Profile.fit(ref, seed=2)
    reference = PredictionByBin(profile, prediction="label", positive="churn")
    reference.update(ref)
    cur = {"plan": rng.choice(["free", "pro", "team"], 4000, p=[0.3, 0.4, 0.3]), "age": rng.normal(45, 10, 4000)}
    cur["label"] = np.where(np.isin(cur["plan"], ["pro", "team"]), "churn", "stay")
    window = PredictionByBin(profile, prediction="label", positive="churn")
    window.update(cur)
    result = attribute_shift(reference, window)
    assert result.features[0].feature == "plan" and result.features[0].share == pytest.approx(1.0, abs=1e-9)
    assert result.reference_mean == pytest.approx(np.mean(ref["label"] == "churn"))
    assert result.explaining == ["plan"]


def test_tables_merge_exactly_and_round_trip():
    rng, profile, reference = _setup(3, n_ref=5000)
    batch = {"x1": rng.normal(size=3000), "x2": np.r_[rng.normal(size=2998), np.nan, np.inf], "x3": rng.normal(size=3000)}
    batch["prediction"] = _score(batch["x1"])
    whole = PredictionByBin(profile)
    whole.update(batch)
    parts = [PredictionByBin(profile) for _ in range(3)]
    for t, idx in zip(parts, np.array_split(np.arange(3000), 3)):
        t.update({k: v[idx] for k, v in batch.items()})
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert np.array_equal(merged.table[0], whole.table[0])
    assert np.allclose(merged.table[1:], whole.table[1:], rtol=1e-12, atol=1e-9)
    assert whole.cells("x2")[0][-1] == 2  # NaN and inf in the missing cell
    back = PredictionByBin.from_dict(json.loads(json.dumps(whole.to_dict())), profile)
    assert np.array_equal(back.table, whole.table)
    other = Profile.fit({"x1": rng.normal(size=100), "prediction": rng.random(100)}, seed=0)
    with pytest.raises(ValueError, match="different profile"):
        PredictionByBin.from_dict(whole.to_dict(), other)
    with pytest.raises(ValueError):
        whole.merge(PredictionByBin(other))
    with pytest.raises(KeyError):
        PredictionByBin(profile, features=["nope"])


def test_rows_without_a_usable_prediction_or_feature_are_counted_not_fatal():
    _, profile, _ = _setup(4, n_ref=2000)
    t = PredictionByBin(profile)
    t.update([{"x1": 0.1, "x2": "oops", "prediction": 0.5}, {"x1": 0.2, "prediction": None}, {"x3": 1.0, "prediction": 0.2}])
    assert t.skipped == 1 and t.cells("x1")[0].sum() == 2 and t.cells("x2")[0][-1] == 2
    with pytest.raises(KeyError, match="prediction"):
        t.update({"x1": [1.0]})


def test_a_correlated_proxy_shares_the_credit_as_documented():
    # x4 is x1 plus a little noise: a marginal decomposition credits both (the module says so)
    rng = np.random.default_rng(5)
    x1 = rng.normal(size=20_000)
    ref = {"x1": x1, "x4": x1 + rng.normal(0, 0.2, 20_000), "prediction": _score(x1)}
    profile = Profile.fit(ref, seed=5)
    reference = PredictionByBin(profile)
    reference.update(ref)
    c1 = rng.normal(0.7, 1.0, 5000)
    window = PredictionByBin(profile)
    window.update({"x1": c1, "x4": c1 + rng.normal(0, 0.2, 5000), "prediction": _score(c1)})
    result = attribute_shift(reference, window)
    assert result.features[0].feature == "x1" and result.features[1].share > 0.7
