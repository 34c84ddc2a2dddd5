import functools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

fairlearn_metrics = pytest.importorskip("fairlearn.metrics", reason="fairlearn is a test dependency (pip install .[test])")
from sklearn.metrics import precision_score  # noqa: E402  (installed with fairlearn)

from raywatch.drift.fairness import GroupRates, assess_fairness  # noqa: E402
from raywatch.stats.segments import Segments  # noqa: E402

MetricFrame = fairlearn_metrics.MetricFrame
TOL = 1e-9


def _data(seed=0, n=4000, groups=("a", "b", "c"), sel=(0.6, 0.45, 0.3), acc=(0.9, 0.8, 0.7)):
    rng = np.random.default_rng(seed)
    g = rng.choice(list(groups), n)
    y_true = rng.integers(0, 2, n)
    idx = np.searchsorted(groups, g)
    y_pred = np.where(rng.random(n) < np.take(acc, idx), y_true, 1 - y_true)
    # shift each group's selection rate a little more
    y_pred = np.where(rng.random(n) < np.take(sel, idx) * 0.3, 1, y_pred)
    score = np.clip(0.5 * y_pred + 0.3 * y_true + rng.normal(0.1, 0.1, n), 0, 1)
    return g, y_true, y_pred, score


def _accumulate(g, y_true, y_pred, score=None, favourable=1, flushes=4):
    """As raywatch does it: per flush (a replica), Segments of GroupRates, merged."""
    merged = None
    for part in np.array_split(np.arange(len(g)), flushes):
        def rates(rows, part=part):
            r = GroupRates(favourable)
            r.add_predictions(y_pred[part][rows])
            r.add_outcomes(y_true[part][rows], y_pred[part][rows], None if score is None else score[part][rows])
            return r

        seg = Segments.build({"group": g[part]}, rates)
        merged = seg if merged is None else merged.merge(seg)
    return {label: acc for label, acc, _ in merged.items("group")}


def _fairlearn(g, y_true, y_pred, pos=1):
    metrics = {
        "selection_rate": functools.partial(fairlearn_metrics.selection_rate, pos_label=pos),
        "true_positive_rate": functools.partial(fairlearn_metrics.true_positive_rate, pos_label=pos),
        "false_positive_rate": functools.partial(fairlearn_metrics.false_positive_rate, pos_label=pos),
        "precision": functools.partial(precision_score, pos_label=pos, zero_division=0),
    }
    return MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=g)


def test_values_equal_fairlearns_on_the_same_rows():
    g, y_true, y_pred, _ = _data()
    report = assess_fairness(_accumulate(g, y_true, y_pred))
    mf = _fairlearn(g, y_true, y_pred)
    for group, row in mf.by_group.iterrows():
        ours = report.groups[group]
        for name in ("selection_rate", "true_positive_rate", "false_positive_rate", "precision"):
            assert getattr(ours, name).value == pytest.approx(row[name], abs=TOL), (group, name)
            assert getattr(ours, name).tested
    kw = dict(sensitive_features=g)
    assert report.demographic_parity_difference.value == pytest.approx(
        fairlearn_metrics.demographic_parity_difference(y_true, y_pred, **kw), abs=TOL)
    assert report.demographic_parity_ratio.value == pytest.approx(
        fairlearn_metrics.demographic_parity_ratio(y_true, y_pred, **kw), abs=TOL)
    assert report.equalized_odds_difference.value == pytest.approx(
        fairlearn_metrics.equalized_odds_difference(y_true, y_pred, **kw), abs=TOL)
    assert report.equal_opportunity_difference.value == pytest.approx(
        fairlearn_metrics.equal_opportunity_difference(y_true, y_pred, **kw), abs=TOL)
    # with the best-off group as reference, disparate impact is the parity ratio
    assert report.reference == mf.by_group["selection_rate"].idxmax()
    assert report.disparate_impact.value == pytest.approx(report.demographic_parity_ratio.value, abs=TOL)
    for f in (report.demographic_parity_difference, report.demographic_parity_ratio, report.equalized_odds_difference):
        assert f.low <= f.value <= f.high


def test_a_favourable_label_other_than_1_and_a_named_reference():
    g, y_true, y_pred, _ = _data(seed=1)
    lab = np.array(["deny", "approve"], dtype=object)
    t, p = lab[y_true], lab[y_pred]
    report = assess_fairness(_accumulate(g, t, p, favourable="approve"), reference="c", four_fifths=0.8)
    mf = _fairlearn(g, t, p, pos="approve")
    for group, row in mf.by_group.iterrows():
        for name in ("selection_rate", "true_positive_rate", "false_positive_rate", "precision"):
            assert getattr(report.groups[group], name).value == pytest.approx(row[name], abs=TOL)
    sr = mf.by_group["selection_rate"]
    assert report.reference == "c" and report.groups["c"].disparate_impact.value == pytest.approx(1.0)
    for group in ("a", "b"):
        assert report.groups[group].disparate_impact.value == pytest.approx(sr[group] / sr["c"], abs=TOL)
    assert report.disparate_impact.value == pytest.approx(min(sr["a"], sr["b"]) / sr["c"], abs=TOL)
    assert report.equalized_odds_difference.value == pytest.approx(
        max(mf.difference()["true_positive_rate"], mf.difference()["false_positive_rate"]), abs=TOL)


def test_four_fifths_rule_names_the_adversely_impacted_group():
    rates = {}
    for group, selected in (("a", 500), ("b", 380), ("c", 450)):
        r = GroupRates()
        r.add_predictions([1] * selected + [0] * (1000 - selected))
        rates[group] = r
    report = assess_fairness(rates)
    assert report.reference == "a" and report.adverse_impact == ["b"]
    assert report.groups["b"].disparate_impact.value == pytest.approx(0.76)
    assert report.groups["b"].below_four_fifths and not report.groups["c"].below_four_fifths
    assert report.disparate_impact.high < 1.0  # the disparity is significant, not just below 0.8
    assert report.equalized_odds_difference.tested is False  # no feedback yet: only parity is tested
    json.dumps(report.to_dict())


def test_small_groups_are_reported_untested_and_left_out_of_the_comparisons():
    rates = {}
    for group, (selected, n) in {"a": (60, 100), "b": (30, 100), "tiny": (0, 5)}.items():
        r = GroupRates()
        r.add_predictions([1] * selected + [0] * (n - selected))
        rates[group] = r
    report = assess_fairness(rates, min_group_size=30)
    tiny = report.groups["tiny"].selection_rate
    assert tiny.value == 0.0 and not tiny.tested and "fewer than min_group_size=30" in tiny.note
    assert report.demographic_parity_difference.value == pytest.approx(0.3)  # tiny's 0.0 left out
    alone = assess_fairness({"a": rates["a"], "tiny": rates["tiny"]}, min_group_size=30)
    assert not alone.demographic_parity_difference.tested and alone.demographic_parity_difference.value is None
    assert not report.groups["a"].true_positive_rate.tested and report.groups["a"].true_positive_rate.value is None
    named = assess_fairness(rates, reference="tiny")
    assert named.disparate_impact.value is None and any("tiny" in n for n in named.notes)


def test_calibration_against_direct_computation():
    g, y_true, y_pred, score = _data(seed=2)
    report = assess_fairness(_accumulate(g, y_true, y_pred, score))
    for group in ("a", "b", "c"):
        m = g == group
        s, y = score[m], y_true[m].astype(float)
        ours = report.groups[group]
        assert ours.mean_score == pytest.approx(s.mean(), abs=TOL)
        assert ours.observed_rate == pytest.approx(y.mean(), abs=TOL)
        d = s - y
        assert ours.calibration_gap.value == pytest.approx(d.mean(), abs=TOL)
        half = 1.959963984540054 * d.std(ddof=1) / math.sqrt(d.size)
        assert (ours.calibration_gap.low, ours.calibration_gap.high) == pytest.approx((d.mean() - half, d.mean() + half))
        b = np.clip((s * 10).astype(int), 0, 9)
        ece = sum((b == k).sum() / s.size * abs(s[b == k].mean() - y[b == k].mean()) for k in range(10) if (b == k).any())
        assert ours.calibration_error == pytest.approx(ece, abs=TOL)


def test_group_rates_round_trip_and_refuse_mismatches():
    r = GroupRates("yes")
    r.add_predictions(["yes", "no", None])
    r.add_outcomes(["yes", None, "no"], ["yes", "no", "yes"], [0.9, 0.2, float("nan")])
    back = GroupRates.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.to_dict() == r.to_dict() and r.counts["skipped"] == 2 and r.sums["cal_n"] == 1
    with pytest.raises(ValueError, match="favourable"):
        r.merge(GroupRates("no"))
    with pytest.raises(ValueError, match="favourable"):
        assess_fairness({"a": r, "b": GroupRates(1)})
    with pytest.raises(ValueError):
        GroupRates.from_dict({**r.to_dict(), "tp": -1})


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from(["g1", "g2", "g3"]), st.integers(0, 1), st.integers(0, 1)),
                  min_size=2, max_size=60),
)
def test_hypothesis_values_equal_fairlearns(rows):
    g = np.array([r[0] for r in rows], dtype=object)
    y_true = np.array([r[1] for r in rows])
    y_pred = np.array([r[2] for r in rows])
    report = assess_fairness(_accumulate(g, y_true, y_pred, flushes=min(3, len(rows))), min_group_size=1)
    mf = _fairlearn(g, y_true, y_pred)
    defined = {"selection_rate": True}
    for group, row in mf.by_group.iterrows():
        ours = report.groups[group]
        for name in ("selection_rate", "true_positive_rate", "false_positive_rate", "precision"):
            est = getattr(ours, name)
            if est.n == 0:  # an empty denominator: undefined here, 0 in fairlearn
                assert est.value is None and row[name] == 0.0
                defined[name] = False
            else:
                assert est.value == pytest.approx(row[name], abs=TOL)
                assert est.low - TOL <= est.value <= est.high + TOL
    kw = dict(sensitive_features=g)
    if len(mf.by_group) >= 2:
        assert report.demographic_parity_difference.value == pytest.approx(
            fairlearn_metrics.demographic_parity_difference(y_true, y_pred, **kw), abs=TOL)
        dpr = fairlearn_metrics.demographic_parity_ratio(y_true, y_pred, **kw)
        if not math.isnan(dpr):
            assert report.demographic_parity_ratio.value == pytest.approx(dpr, abs=TOL)
        if defined.get("true_positive_rate", True) and defined.get("false_positive_rate", True):
            assert report.equalized_odds_difference.value == pytest.approx(
                fairlearn_metrics.equalized_odds_difference(y_true, y_pred, **kw), abs=TOL)
        if defined.get("true_positive_rate", True):
            assert report.equal_opportunity_difference.value == pytest.approx(
                fairlearn_metrics.equal_opportunity_difference(y_true, y_pred, **kw), abs=TOL)
