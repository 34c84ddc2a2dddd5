import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from raywatch.drift.performance import ClassificationMetrics, RegressionMetrics


def _exact_prf(y, p, label):
    tp = sum(1 for a, b in zip(y, p) if a == label and b == label)
    fp = sum(1 for a, b in zip(y, p) if a != label and b == label)
    fn = sum(1 for a, b in zip(y, p) if a == label and b != label)
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return prec, rec, f1


def test_binary_metrics_match_direct_computation():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.where(rng.random(500) < 0.8, y, 1 - y)
    m = ClassificationMetrics()
    m.update(y, p)
    r = m.result()
    assert r["rows"] == 500
    assert r["accuracy"] == pytest.approx(float(np.mean(y == p)), abs=1e-12)
    prec, rec, f1 = _exact_prf(y.tolist(), p.tolist(), 1)
    assert (r["precision"], r["recall"], r["f1"]) == pytest.approx((prec, rec, f1), abs=1e-12)
    assert r["roc_auc"] is None  # no scores given


def test_macro_average_for_multiclass():
    y = ["a", "b", "c", "a", "b", "c", "a"]
    p = ["a", "b", "b", "a", "c", "c", "b"]
    m = ClassificationMetrics()
    m.update(y, p)
    r = m.result()
    per = [_exact_prf(y, p, lab) for lab in "abc"]
    for i, key in enumerate(("precision", "recall", "f1")):
        assert r[key] == pytest.approx(sum(v[i] or 0.0 for v in per) / 3)
    assert r["roc_auc"] is None


def test_micro_average_equals_accuracy_for_single_label():
    y, p = [0, 1, 2, 2, 1], [0, 2, 2, 2, 1]
    m = ClassificationMetrics(average="micro")
    m.update(y, p)
    r = m.result()
    assert r["precision"] == pytest.approx(r["accuracy"]) == pytest.approx(0.8)


def test_labels_normalized_across_types():
    m = ClassificationMetrics()
    m.update([True, 1.0, np.int64(1)], [1, True, 1])
    assert m.result()["accuracy"] == 1.0
    assert m.labels == [1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_binned_roc_auc_within_documented_bound(seed):
    rng = np.random.default_rng(seed)
    n = 4000
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * (y - 0.5))))
    m = ClassificationMetrics()
    m.update(y, (score > 0.5).astype(int), score=score)
    auc, bound = m.roc_auc()
    pos, neg = score[y == 1], score[y == 0]
    exact = mannwhitneyu(pos, neg).statistic / (pos.size * neg.size)
    assert bound < 0.002
    assert abs(auc - exact) <= bound + 1e-12
    assert m.result()["roc_auc_error_bound"] == bound


def test_roc_auc_bound_is_tight_when_all_scores_share_a_bin():
    m = ClassificationMetrics(score_bins=2)
    m.update([1, 0], [1, 0], score=[0.9, 0.8])  # same bin: the order is lost
    auc, bound = m.roc_auc()
    assert auc == 0.5 and bound == 0.5  # exact AUC is 1.0, within the bound


def test_missing_labels_and_scores_are_skipped_and_counted():
    m = ClassificationMetrics()
    m.update([1, None, 0, 1], [1, 1, None, 0], score=[0.9, 0.1, 0.2, float("nan")])
    r = m.result()
    assert r["rows"] == 2 and r["skipped"] == 2
    assert r["roc_auc"] is None  # only one class has a usable score


def test_bad_input_errors():
    m = ClassificationMetrics()
    with pytest.raises(ValueError, match="differ in length"):
        m.update([1, 0], [1])
    with pytest.raises(ValueError, match="differ in length"):
        m.update([1, 0], [1, 0], score=[0.3])
    with pytest.raises(TypeError, match="score must be a number"):
        m.update([1], [1], score=["high"])
    with pytest.raises(TypeError, match="hashable"):
        m.update([[1]], [1])
    with pytest.raises(ValueError, match="average"):
        ClassificationMetrics(average="weighted")
    with pytest.raises(ValueError, match="score_range"):
        ClassificationMetrics(score_range=(1, 1))
    with pytest.raises(ValueError, match="different"):
        ClassificationMetrics().merge(ClassificationMetrics(score_bins=10))
    with pytest.raises(TypeError):
        ClassificationMetrics().merge(RegressionMetrics())


def test_empty_results_are_none():
    r = ClassificationMetrics().result()
    assert r["rows"] == 0 and r["accuracy"] is None and r["precision"] is None and r["roc_auc"] is None
    r = RegressionMetrics().result()
    assert r == {"rows": 0, "mae": None, "rmse": None, "bias": None, "r2": None, "skipped": 0}


rows = st.lists(
    st.tuples(st.sampled_from([0, 1, 2]), st.sampled_from([0, 1, 2]), st.floats(0, 1)),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows, rows, rows)
def test_classification_merge_is_exact_associative_commutative(a, b, c):
    def acc(part):
        m = ClassificationMetrics()
        if part:
            y, p, s = zip(*part)
            m.update(list(y), list(p), score=list(s))
        return m

    whole = acc(a + b + c).result()
    left = acc(a).merge(acc(b)).merge(acc(c)).result()
    right = acc(c).merge(acc(b).merge(acc(a))).result()
    assert left == whole == right
    restored = ClassificationMetrics.from_dict(json.loads(json.dumps(acc(a + b).to_dict())))
    assert restored.result() == acc(a + b).result()


values = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(values, values), max_size=30), st.lists(st.tuples(values, values), max_size=30))
def test_regression_merge_equals_concatenation(a, b):
    def acc(part):
        m = RegressionMetrics()
        if part:
            t, p = zip(*part)
            m.update(list(t), list(p))
        return m

    merged = acc(a).merge(acc(b)).result()
    whole = acc(a + b).result()
    for k, v in whole.items():
        if v is None:
            assert merged[k] is None or k == "r2"
        else:
            assert merged[k] == pytest.approx(v, rel=1e-9, abs=1e-6 * (1 + abs(v)))
    restored = RegressionMetrics.from_dict(json.loads(json.dumps(acc(a).to_dict())))
    assert restored.result() == acc(a).result()


def test_regression_values_match_numpy():
    rng = np.random.default_rng(5)
    t = rng.normal(size=300)
    p = t + rng.normal(scale=0.3, size=300)
    m = RegressionMetrics()
    m.update(t[:100], p[:100])
    m = m.merge(RegressionMetrics())
    m2 = RegressionMetrics()
    m2.update(t[100:], p[100:])
    r = m.merge(m2).result()
    assert r["mae"] == pytest.approx(np.mean(np.abs(p - t)), rel=1e-12)
    assert r["rmse"] == pytest.approx(math.sqrt(np.mean((p - t) ** 2)), rel=1e-12)
    assert r["r2"] == pytest.approx(1 - np.sum((p - t) ** 2) / np.sum((t - t.mean()) ** 2), rel=1e-9)


def test_regression_bad_input():
    m = RegressionMetrics()
    m.update([1.0, None, float("inf"), 2.0], [1.0, 2.0, 3.0, float("nan")])
    assert m.result()["rows"] == 1 and m.result()["skipped"] == 3
    with pytest.raises(TypeError, match="numbers"):
        m.update(["a"], [1.0])
    with pytest.raises(ValueError, match="differ in length"):
        m.update([1.0], [])
    with pytest.raises(ValueError, match="kind"):
        RegressionMetrics.from_dict({"kind": "classification"})
