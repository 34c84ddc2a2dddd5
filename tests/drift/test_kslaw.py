"""The bounded-cost KS law against scipy's exact two-sample law (raywatch/drift/kslaw.py).

The limit law must never fall below the exact law (the false-alarm guarantee) and may exceed
it by at most the factors its docstring tables (``kslaw.max_ratio``). The fast test checks a
grid of the kinds of sizes that make the law err most — windows of a few hundred rows against
thousands, sizes near a multiple of each other, equal sizes, small windows against large
references — at values of D spread over the p-values that matter; the slow test a larger one.
"""

import math

import numpy as np
import pytest

from raywatch.drift import kslaw
from raywatch.drift.statistics import ks_pvalue, ks_pvalues


def _lattice(d: float, n1: int, n2: int) -> float:
    lcm = (n1 // math.gcd(n1, n2)) * n2
    return round(d * lcm) / lcm


def _pairs(rng, count: int, max_work: float):
    pairs = {(5000, 300), (5000, 517), (5000, 1000), (2000, 2000), (1001, 1000), (601, 300), (1999, 1000),
             (10_000, 30), (7756, 49), (20_000, 12), (1658, 1657), (3001, 1500)}
    while len(pairs) < count:
        kind = rng.integers(3)
        if kind == 0:  # log-uniform sizes
            n1 = int(np.exp(rng.uniform(np.log(400), np.log(10_000))))
            n2 = int(np.exp(rng.uniform(np.log(25), np.log(n1))))
        elif kind == 1:  # near a multiple: a coarse lattice
            n2 = int(rng.integers(150, 1500))
            n1 = int(rng.integers(1, 5)) * n2 + int(rng.integers(-2, 3))
        else:  # a small window against a large reference
            n1, n2 = int(rng.integers(4000, 10_001)), int(rng.integers(25, 60))
        n1, n2 = max(n1, n2), min(n1, n2)
        if kslaw.EXACT_WORK < n1 * n2 <= max_work:
            pairs.add((n1, n2))
    return sorted(pairs)


def _check(pairs, zs):
    worst_low, worst_high, cases = math.inf, 0.0, 0
    for n1, n2 in pairs:
        en = n1 * n2 / (n1 + n2)
        ds = np.array([_lattice(z / math.sqrt(en), n1, n2) for z in zs])
        fast = kslaw.limit_pvalues(ds, np.full(ds.size, n1), np.full(ds.size, n2))
        for d, p in zip(ds.tolist(), fast.tolist()):
            exact = kslaw.exact_pvalue(d, n1, n2)
            if exact is None or exact < 1e-8:
                continue
            cases += 1
            assert p >= exact - 1e-12, (n1, n2, d, p, exact)  # never below: no added false alarms
            assert p <= exact * kslaw.max_ratio(en, exact) + 1e-12, (n1, n2, d, p, exact)
            if p < 1.0:
                worst_low = min(worst_low, p / exact)
            worst_high = max(worst_high, p / exact)
    return cases, worst_low, worst_high


def test_limit_law_is_conservative_and_within_its_bound_on_a_grid():
    pairs = _pairs(np.random.default_rng(0), 40, max_work=3e6)
    cases, low, high = _check(pairs, np.concatenate((np.linspace(0.5, 2.9, 9), [1.36, 1.63, 1.95])))
    assert cases > 400
    assert 1.0 <= low < 1.05 and high > 1.05  # it is a limit law, close to the exact one


@pytest.mark.slow
def test_limit_law_is_conservative_and_within_its_bound_on_a_large_grid():
    pairs = _pairs(np.random.default_rng(1), 200, max_work=2.5e7)
    cases, low, _ = _check(pairs, np.linspace(0.3, 3.3, 31))
    print(f"\n{cases} cases: the limit law is at least {low:.4f} of the exact law")
    assert cases > 5000


def test_exact_where_cheap_and_one_call_for_many():
    rng = np.random.default_rng(2)
    n1 = rng.integers(30, 5000, 200)
    n2 = rng.integers(5, 400, 200)
    d = rng.uniform(0.0, 0.4, 200)
    many = ks_pvalues(d, n1, n2)
    for i in range(200):
        one = ks_pvalue(float(d[i]), int(n1[i]), int(n2[i]), bounded=True)
        assert many[i] == one
        if n1[i] * n2[i] <= kslaw.EXACT_WORK:
            assert one == (kslaw.exact_pvalue(float(d[i]), int(n1[i]), int(n2[i])) if d[i] > 0 else 1.0)
    assert ks_pvalues(0.0, 10_000, 5000) == 1.0 and ks_pvalues(1.0, 10_000, 5000) < 1e-300
    with pytest.raises(ValueError):
        ks_pvalues([0.1], [0], [10])


def test_large_sizes_have_a_law_without_scipy_exact():
    # beyond scipy's exact range (sizes above 10,000): the same limit law, finite and conservative
    # against scipy's one-sample law at the effective size, which the exact law approaches
    from scipy import stats

    for n1, n2 in ((100_000, 5000), (1_000_000, 60_000)):
        en = n1 * n2 / (n1 + n2)
        for z in (0.8, 1.36, 2.0):
            d = z / math.sqrt(en)
            p = float(ks_pvalues(d, n1, n2))
            assert stats.kstwo.sf(d, round(en)) <= p <= stats.kstwo.sf(d, round(en)) * 1.08
