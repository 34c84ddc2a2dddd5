"""The example models and their data, without Ray."""

from __future__ import annotations

import numpy as np
import pytest

from deployments import approval, fraud
from deployments.fraud_data import CATEGORIES, FEATURES, generate_transactions, to_rows
from deployments.models import LogisticRegression, roc_auc


def test_generator_is_seeded_and_realistic():
    a, ya = generate_transactions(5000, seed=11)
    b, yb = generate_transactions(5000, seed=11)
    assert all(np.array_equal(a[k], b[k]) for k in a) and np.array_equal(ya, yb)
    assert 0.02 < ya.mean() < 0.04
    assert set(a["merchant_category"]) == set(CATEGORIES)
    assert a["hour"].min() >= 0 and a["hour"].max() <= 23
    assert (a["amount"] > 0).all() and (a["distance_km"] > 0).all()
    assert not a["card_present"][a["merchant_category"] == "online_retail"].any()
    # frauds differ from genuine transactions where the features say they should
    f = ya == 1
    assert np.median(a["amount"][f]) > 1.5 * np.median(a["amount"][~f])
    assert np.median(a["distance_km"][f]) > 3 * np.median(a["distance_km"][~f])
    assert a["tx_count_24h"][f].mean() > a["tx_count_24h"][~f].mean()


def test_drift_changes_only_the_named_columns():
    base, _ = generate_transactions(3000, seed=5)
    drifted, _ = generate_transactions(3000, seed=5, drift={"amount": 3.0, "distance_km": 5.0})
    assert np.allclose(drifted["amount"], base["amount"] * 3.0, rtol=1e-9, atol=0.02)
    for k in FEATURES:
        if k not in ("amount", "distance_km"):
            assert np.array_equal(drifted[k], base[k]), k
    mixed, _ = generate_transactions(3000, seed=5, drift={"merchant_category": {"travel": 1.0}})
    assert set(mixed["merchant_category"]) == {"travel"}
    with pytest.raises(ValueError, match="cannot drift 'hour'|not a numerical"):
        generate_transactions(10, drift={"card_present": 2})


def test_fraud_classifier_is_a_real_model():
    clf = fraud.FraudClassifier.train(seed=0, n=20_000)
    assert 0.75 < clf.auc < 0.95  # a third of the frauds look genuine: good, not perfect
    cols, y = generate_transactions(4000, seed=99)
    p = clf.predict_columns(cols)["probability"]
    assert roc_auc(y, p) > 0.75
    assert abs(p.mean() - y.mean()) < 0.02  # calibrated on average
    rows = to_rows(cols)[:3]
    out = clf.predict_rows(rows)
    assert [set(o) for o in out] == [{"is_fraud", "probability"}] * 3
    assert list(out[0]) == ["is_fraud", "probability"]  # the decision first: the monitor joins feedback to it
    with pytest.raises(ValueError, match="missing feature"):
        clf.predict_rows([{"amount": 1.0}])


def test_logistic_regression_matches_known_coefficients():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20_000, 2))
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(1.5 * X[:, 0] - 0.5 * X[:, 1] + 0.3)))).astype(int)
    m = LogisticRegression(l2=0.0).fit(X, y)
    raw_coef = m.w_ / m.scale_
    assert np.allclose(raw_coef, [1.5, -0.5], atol=0.08)


def test_approval_regressor_beats_the_mean():
    cols, y = approval.load_polls()
    assert len(y) == 1001 and set(cols) == set(approval.FEATURES)
    reg = approval.ApprovalRegressor.train()
    assert reg.rmse < 0.5 * np.std(y)
    pred = reg.predict_rows([{k: float(v[0]) for k, v in cols.items()}])[0]["approval"]
    assert abs(pred - y[0]) < 2.0


def test_reference_profiles_cover_features_and_predictions():
    p = fraud.reference_profile()
    assert p.kinds == {**FEATURES, **fraud.PREDICTIONS}
    assert p.reference.rows == fraud.TRAIN_ROWS
    q = approval.reference_profile()
    assert set(q.columns) == set(approval.FEATURES) | {"approval"} and q.reference.rows == 1001


def test_builders_reject_unknown_args():
    with pytest.raises(ValueError, match="unknown args"):
        fraud.build({"sed": 1})
    with pytest.raises(ValueError, match="unknown args"):
        approval.build({"alpha": 1})
    app = fraud.build({"seed": 3})
    assert app._bound_deployment.init_kwargs == {"seed": 3}


def test_fraud_deployment_user_config_knobs():
    model = fraud.FraudModel.func_or_class.__new__(fraud.FraudModel.func_or_class)
    model.classifier = fraud.FraudClassifier.train(n=2000)
    model.simulated_latency = 0.0
    model.reconfigure({"threshold": 0.9, "simulated_latency_ms": 250})
    assert model.classifier.threshold == 0.9 and model.simulated_latency == 0.25
    with pytest.raises(ValueError, match="unknown keys"):
        model.reconfigure({"latency": 1})
