import math

import numpy as np
import pytest

from raywatch.drift import intervals as ci
from raywatch.drift.fairness import GroupRates, assess_fairness


def test_edge_cases():
    assert ci.wilson(0, 0) == (0.0, 1.0)
    lo, hi = ci.wilson(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2
    lo, hi = ci.wilson(20, 20)
    assert hi == 1.0 and 0.8 < lo < 0.9
    assert ci.ratio(3, 10, 0, 10) is None
    lo, hi = ci.ratio(0, 10, 3, 10)
    assert lo == 0.0 and 0 < hi < math.inf
    assert ci.ratio(5, 10, 1, 1000)[1] > 100  # a tiny denominator rate: a wide interval
    assert ci.spread([(3, 10)]) is None and ci.min_ratio([(3, 10)]) is None
    assert ci.min_ratio([(0, 10), (0, 20)]) == (0.0, 1.0)
    assert ci.mean_interval(1, 0.5, 0.25) is None
    with pytest.raises(ValueError):
        ci.z_value(1.0)


def test_spread_of_two_groups_is_newcombes_interval_folded_at_zero():
    lo, hi = ci.difference(56, 70, 48, 80)
    assert ci.spread([(56, 70), (48, 80)]) == pytest.approx((lo, hi))
    assert ci.spread([(48, 80), (56, 70)]) == pytest.approx((lo, hi))
    lo, hi = ci.difference(10, 20, 11, 20)
    assert ci.spread([(10, 20), (11, 20)]) == pytest.approx((0.0, max(hi, -lo)))


def _coverage(draw, truth, interval, sims, seed):
    rng = np.random.default_rng(seed)
    hits = total = 0
    for _ in range(sims):
        r = interval(*draw(rng))
        if r is None:
            continue
        total += 1
        hits += r[0] - 1e-12 <= truth <= r[1] + 1e-12
    return hits / total


@pytest.mark.parametrize("p, n", [(0.5, 20), (0.1, 50), (0.02, 400), (0.8, 200)])
def test_wilson_covers_about_95_percent(p, n):
    cov = _coverage(lambda r: (r.binomial(n, p), n), p, ci.wilson, 4000, 1)
    assert 0.93 <= cov <= 0.985, cov


@pytest.mark.parametrize("p1, p2, n1, n2", [(0.5, 0.5, 30, 30), (0.3, 0.1, 50, 80), (0.05, 0.02, 500, 300)])
def test_newcombe_difference_covers_about_95_percent(p1, p2, n1, n2):
    draw = lambda r: (r.binomial(n1, p1), n1, r.binomial(n2, p2), n2)  # noqa: E731
    cov = _coverage(draw, p1 - p2, ci.difference, 4000, 2)
    assert 0.935 <= cov <= 0.98, cov


@pytest.mark.parametrize("p1, p2, n1, n2", [(0.3, 0.6, 100, 100), (0.05, 0.1, 200, 300), (0.2, 0.25, 30, 40), (0.1, 0.5, 20, 20)])
def test_mover_ratio_covers_about_95_percent(p1, p2, n1, n2):
    draw = lambda r: (r.binomial(n1, p1), n1, r.binomial(n2, p2), n2)  # noqa: E731
    cov = _coverage(draw, p1 / p2, ci.ratio, 4000, 3)
    assert 0.935 <= cov <= 0.98, cov


@pytest.mark.parametrize("rates", [(0.4, 0.4, 0.4), (0.5, 0.4, 0.3), (0.2, 0.21, 0.5, 0.3)])
def test_simultaneous_spread_and_ratio_cover_at_least_95_percent(rates):
    n = 150
    draw = lambda r: ([(int(r.binomial(n, p)), n) for p in rates],)  # noqa: E731
    spread = _coverage(draw, max(rates) - min(rates), ci.spread, 2000, 4)
    ratio = _coverage(draw, min(rates) / max(rates), ci.min_ratio, 2000, 5)
    print("coverage", rates, spread, ratio)
    assert spread >= 0.94 and ratio >= 0.94, (spread, ratio)


def test_the_fairness_reports_intervals_cover_the_population_figures():
    # three groups with known selection, true and false positive rates
    sel, tpr, fpr, n = (0.5, 0.35, 0.45), (0.9, 0.7, 0.8), (0.2, 0.1, 0.3), 400
    rng = np.random.default_rng(6)
    hits = {"dp": 0, "dpr": 0, "eo": 0, "di": 0}
    sims = 400
    for _ in range(sims):
        groups = {}
        for i, g in enumerate("abc"):
            r = GroupRates()
            r.add_predictions((rng.random(n) < sel[i]).astype(int))
            y = (rng.random(n) < 0.5).astype(int)
            pred = np.where(y == 1, rng.random(n) < tpr[i], rng.random(n) < fpr[i]).astype(int)
            r.add_outcomes(y, pred)
            groups[g] = r
        rep = assess_fairness(groups, reference="a")
        inside = lambda e, v: e.low <= v <= e.high  # noqa: E731
        hits["dp"] += inside(rep.demographic_parity_difference, max(sel) - min(sel))
        hits["dpr"] += inside(rep.demographic_parity_ratio, min(sel) / max(sel))
        hits["eo"] += inside(rep.equalized_odds_difference, max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
        hits["di"] += inside(rep.disparate_impact, min(sel[1], sel[2]) / sel[0])
    cov = {k: v / sims for k, v in hits.items()}
    print("coverage", cov)
    assert all(v >= 0.93 for v in cov.values()), cov
