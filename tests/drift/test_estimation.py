"""Label-free performance estimation (CBPE) against known truth."""

import json

import numpy as np
import pytest
from scipy.stats import rankdata

from raywatch.drift import detect_drift
from raywatch.drift.estimation import disagreement, estimate_performance
from raywatch.drift.performance import ClassificationMetrics
from raywatch.stats import Profile, WindowSummary
from raywatch.stats.confidence import ConfidenceEstimator, ConfidenceSection
from raywatch.stats.sections import Batch, Section

W = 4000


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def auc(y, s):
    r = rankdata(s)
    npos = int(y.sum())
    return (r[y == 1].sum() - npos * (npos + 1) / 2) / (npos * (y.size - npos))


def binary(rng, n, shift=0.0, concept=0.0):
    x = rng.normal(shift, 1 + 0.3 * shift, size=(n, 2))
    z = 1.5 * x[:, 0] - x[:, 1]
    y = (rng.random(n) < sigmoid(z - concept)).astype(int)
    return {"f0": x[:, 0], "f1": x[:, 1], "proba": sigmoid(2.2 * z + 0.5), "y": y}  # miscalibrated model


@pytest.fixture(scope="module")
def binary_profile():
    rng = np.random.default_rng(7)
    return Profile.fit(binary(rng, 30_000), seed=0, performance={"target": "y", "scores": "proba"})


def realized(y, pred, score):
    return {"accuracy": float(np.mean(y == pred)), "roc_auc": float(auc(y, score))}


def test_binary_estimates_follow_covariate_shift(binary_profile):
    rng = np.random.default_rng(8)
    est = binary_profile.extensions["performance"]
    assert est.calibrations[0].method in ("isotonic", "platt")
    inside, errors = 0, []
    for shift in np.linspace(0, 1.2, 12):
        w = binary(rng, W, shift)
        e = estimate_performance(est, binary_profile.summarize(w).sections["performance"])
        truth = realized(w["y"], (w["proba"] >= 0.5).astype(int), w["proba"])
        for metric, value in truth.items():
            m = e.metrics[metric]
            errors.append(abs(m.value - value))
            inside += m.lower <= value <= m.upper
    assert np.mean(errors) < 0.01
    assert inside >= 22  # of 24 (3-sigma bands)


def test_precision_recall_f1_equal_the_expected_confusion_matrix(binary_profile):
    rng = np.random.default_rng(9)
    est = binary_profile.extensions["performance"]
    w = binary(rng, W, 0.5)
    e = estimate_performance(est, binary_profile.summarize(w).sections["performance"])
    p = est.calibrations[0](w["proba"])
    pred = w["proba"] >= 0.5
    tp, fp, fn = p[pred].sum(), (1 - p[pred]).sum(), p[~pred].sum()
    assert e.value("precision") == pytest.approx(tp / (tp + fp))
    assert e.value("recall") == pytest.approx(tp / (tp + fn))
    assert e.value("f1") == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert e.value("accuracy") == pytest.approx((tp + (1 - p[~pred]).sum()) / W)
    # NannyML's estimate on the sorted rows, exactly; ours within its binning bound
    order = np.argsort(-w["proba"], kind="stable")
    tps, fps = np.r_[0, np.cumsum(p[order])], np.r_[0, np.cumsum(1 - p[order])]
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    exact = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # the trapezoid rule, as sklearn's auc
    assert abs(e.value("roc_auc") - exact) <= e.roc_auc_error_bound + 1e-9
    assert e.roc_auc_error_bound < 0.002


def test_sampling_error_matches_the_spread_of_realized_values(binary_profile):
    rng = np.random.default_rng(10)
    est = binary_profile.extensions["performance"]
    values, ses = {"accuracy": [], "roc_auc": []}, {"accuracy": [], "roc_auc": []}
    for _ in range(60):
        w = binary(rng, 2000)
        e = estimate_performance(est, binary_profile.summarize(w).sections["performance"])
        for metric, v in realized(w["y"], (w["proba"] >= 0.5).astype(int), w["proba"]).items():
            values[metric].append(v)
            ses[metric].append(e.metrics[metric].sampling_error)
    for metric in values:
        ratio = np.std(values[metric]) / np.mean(ses[metric])
        print(metric, round(ratio, 3))
        assert 0.7 < ratio < 1.4, (metric, ratio)


def test_concept_drift_shows_as_disagreement(binary_profile):
    rng = np.random.default_rng(11)
    est = binary_profile.extensions["performance"]
    alarms = 0
    for _ in range(20):  # no concept drift: realized stays within the band
        w = binary(rng, W, 0.3)
        e = estimate_performance(est, binary_profile.summarize(w).sections["performance"])
        m = ClassificationMetrics()
        m.update(w["y"], (w["proba"] >= 0.5).astype(int), score=w["proba"])
        alarms += any(d.disagree for d in disagreement(est, e, m.result(), m.rows).values())
    assert alarms <= 1
    w = binary(rng, W, 0.3, concept=1.0)  # the labels' law given the inputs moved
    e = estimate_performance(est, binary_profile.summarize(w).sections["performance"])
    m = ClassificationMetrics()
    labelled = slice(0, 1500)  # only some labels arrived
    m.update(w["y"][labelled], (w["proba"][labelled] >= 0.5).astype(int), score=w["proba"][labelled])
    d = disagreement(est, e, m.result(), m.rows)
    assert d["accuracy"].disagree and d["accuracy"].realized < d["accuracy"].estimated
    assert abs(d["accuracy"].difference) > d["accuracy"].band
    assert not disagreement(est, e, {"accuracy": None}, 0)["accuracy"].disagree


def multiclass(rng, n, shift=0.0):
    x = rng.normal([shift, -shift / 2], 1.0, size=(n, 2))
    logits = np.column_stack((x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array(["cat", "dog", "eel"])[(rng.random((n, 1)) > p.cumsum(axis=1)).sum(axis=1)]
    q = np.exp(1.6 * logits) / np.exp(1.6 * logits).sum(axis=1, keepdims=True)  # overconfident
    cols = {f"p_{c}": q[:, i] for i, c in enumerate(("cat", "dog", "eel"))}
    return {**cols, "pred": np.array(["cat", "dog", "eel"])[q.argmax(axis=1)], "y": y}


def test_multiclass_estimates_with_string_labels():
    rng = np.random.default_rng(12)
    scores = {"cat": "p_cat", "dog": "p_dog", "eel": "p_eel"}
    profile = Profile.fit(multiclass(rng, 30_000), seed=0,
                          performance={"target": "y", "scores": scores, "prediction": "pred"})
    est = profile.extensions["performance"]
    assert est.classes == ["cat", "dog", "eel"] and not est.binary
    errors = []
    for shift in (0.0, 0.5, 1.0):
        w = multiclass(rng, W, shift)
        e = estimate_performance(est, profile.summarize(w).sections["performance"])
        assert e.average == "macro"
        errors.append(abs(e.value("accuracy") - np.mean(w["y"] == w["pred"])))
        macro_auc = np.mean([auc((w["y"] == c).astype(int), w[f"p_{c}"]) for c in scores])
        errors.append(abs(e.value("roc_auc") - macro_auc))
        for metric in ("precision", "recall", "f1"):
            assert 0 < e.value(metric) < 1 and e.metrics[metric].sampling_error > 0
    assert np.mean(errors) < 0.015


def test_sections_merge_exactly_and_count_what_they_skip(binary_profile):
    rng = np.random.default_rng(13)
    est = binary_profile.extensions["performance"]
    w = binary(rng, 3000, 0.4)
    parts = [est.summarize(Batch({"proba": w["proba"][i:i + 1000]}, 1000)) for i in range(0, 3000, 1000)]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    whole = est.summarize(Batch({"proba": w["proba"]}, 3000))
    np.testing.assert_allclose(merged.confusion, whole.confusion, rtol=1e-12)
    np.testing.assert_array_equal(merged.bin_n, whole.bin_n)
    assert Section.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged
    gaps = est.summarize(Batch({"proba": np.array([0.2, np.nan, 0.9, np.inf])}, 4))
    assert (gaps.rows, gaps.skipped) == (2, 2)
    assert est.summarize(Batch({}, 5)).skipped == 5


def test_prediction_column_with_unknown_labels_and_threshold():
    rng = np.random.default_rng(14)
    s = rng.random(5000)
    y = (rng.random(5000) < s).astype(int)
    est = ConfidenceEstimator.fit(y, s, (s >= 0.3).astype(int), prediction_column="label", threshold=0.3)
    sec = est.summarize(Batch({"score": np.array([0.2, 0.6, 0.7]), "label": np.array([0, 1, 7])}, 3))
    assert (sec.rows, sec.skipped) == (2, 1)
    assert sec.confusion.sum(axis=0).tolist() == [1.0, 1.0]  # one predicted 0, one predicted 1
    no_labels = ConfidenceEstimator.fit(y, s, threshold=0.3)
    sec = no_labels.summarize(Batch({"score": np.array([0.2, 0.35])}, 2))
    assert sec.confusion.sum(axis=0).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="binary target"):
        ConfidenceEstimator.fit(np.array([0, 1, 2]), np.array([0.1, 0.5, 0.9]))


def test_estimates_reach_the_drift_report(binary_profile):
    rng = np.random.default_rng(15)
    w = binary(rng, 2000, 0.5)
    report = detect_drift(binary_profile, {k: v for k, v in w.items() if k != "y"})
    est = report.extensions["performance"]
    truth = np.mean(w["y"] == (w["proba"] >= 0.5))
    assert est.metrics["accuracy"].lower <= truth <= est.metrics["accuracy"].upper
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["extensions"]["performance"]["metrics"]["roc_auc"]["lower"] is not None
    s = binary_profile.summarize({k: v for k, v in w.items() if k != "y"})
    assert isinstance(WindowSummary.from_bytes(s.to_bytes()).sections["performance"], ConfidenceSection)


def test_binary_fast_path_equals_the_general_arithmetic(binary_profile):
    """A binary model of one score is estimated on scalars (``_estimate_binary``); every figure
    equals the per-class arithmetic of the general path, including empty and one-class windows."""
    import copy

    est = binary_profile.extensions["performance"]
    general = copy.copy(est)
    general._binary = False  # the general path, same components
    rng = np.random.default_rng(11)
    windows = [binary(rng, n, shift) for n, shift in ((W, 0.0), (500, 1.0), (40, -2.0))]
    secs = [binary_profile.summarize(w).sections["performance"] for w in windows]
    empty = ConfidenceSection(np.zeros((2, 2)), np.zeros_like(secs[0].bin_p), np.zeros_like(secs[0].bin_n))
    one_class = ConfidenceSection(np.array([[5.0, 0.0], [0.0, 0.0]]), np.zeros_like(secs[0].bin_p),
                                  np.zeros_like(secs[0].bin_n), rows=5)
    for sec in secs + [empty, one_class]:
        fast, slow = estimate_performance(est, sec), estimate_performance(general, sec)
        assert est._binary and general._binary is False
        assert fast.shares == slow.shares and fast.rows == slow.rows
        a, b = fast.roc_auc_error_bound, slow.roc_auc_error_bound  # None where ROC AUC is undefined
        assert (a is None) == (b is None) and (a is None or a == pytest.approx(b, rel=1e-12))
        for name, m in slow.metrics.items():
            f = fast.metrics[name]
            for key in ("value", "sampling_error", "lower", "upper"):
                a, b = getattr(f, key), getattr(m, key)
                assert (a is None) == (b is None), (name, key)
                assert a is None or type(a) is float, (name, key, type(a))  # plain floats, never numpy scalars
                assert a is None or a == pytest.approx(b, rel=1e-12, abs=1e-15), (name, key)
