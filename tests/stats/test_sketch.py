import json
import math

import numpy as np
import pytest

from raywatch.stats.sketch import LatencySketch


def _exact_quantile(values, q):
    v = np.sort(np.asarray(values))
    return v[int(math.floor(q * (len(v) - 1)))]


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "exponential", "pareto"])
def test_quantiles_within_relative_accuracy(dist):
    rng = np.random.default_rng(7)
    values = {
        "lognormal": rng.lognormal(-4, 1.5, 20000),
        "uniform": rng.uniform(1e-4, 2.0, 20000),
        "exponential": rng.exponential(0.05, 20000),
        "pareto": (rng.pareto(1.5, 20000) + 1) * 1e-3,
    }[dist]
    s = LatencySketch(alpha=0.01)
    s.add_many(values)
    assert s.count == values.size
    for q in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact = _exact_quantile(values, q)
        got = s.quantile(q)
        assert abs(got - exact) <= 0.01 * exact + 1e-12, (q, got, exact)


def test_add_and_add_many_agree():
    rng = np.random.default_rng(1)
    values = rng.lognormal(-3, 1, 3000)
    a, b = LatencySketch(), LatencySketch()
    for v in values:
        a.add(v)
    b.add_many(values)
    assert a.to_dict()["counts"] == b.to_dict()["counts"]
    assert a.to_dict()["offset"] == b.to_dict()["offset"]
    assert a.count == b.count
    assert a.sum == pytest.approx(b.sum)


def test_merge_is_exact():
    rng = np.random.default_rng(2)
    x, y = rng.lognormal(-4, 1, 5000), rng.lognormal(-1, 0.5, 7000)
    a, b, whole = LatencySketch(), LatencySketch(), LatencySketch()
    a.add_many(x)
    b.add_many(y)
    whole.add_many(np.concatenate([x, y]))
    merged = a.copy().merge(b)
    assert merged.to_dict()["counts"] == whole.to_dict()["counts"]
    assert merged.count == whole.count == 12000
    assert merged.min == whole.min and merged.max == whole.max
    assert merged.sum == pytest.approx(whole.sum)
    # the copy left `a` alone
    assert a.count == 5000
    # merge order does not matter
    other = b.copy().merge(a)
    assert other.to_dict()["counts"] == merged.to_dict()["counts"]


def test_merge_into_empty_and_of_empty():
    a = LatencySketch()
    b = LatencySketch()
    b.add_many([0.1, 0.2])
    assert a.merge(b) is a and a.count == 2
    assert a.merge(LatencySketch()).count == 2


def test_merge_rejects_different_alpha():
    with pytest.raises(ValueError):
        LatencySketch(0.01).merge(LatencySketch(0.02))
    with pytest.raises(TypeError):
        LatencySketch().merge({"counts": []})


def test_zero_negative_and_nan():
    s = LatencySketch()
    s.add_many([0.0, 0.0, -1.0, float("nan"), 0.5])
    s.add(-3)
    assert s.count == 3
    assert s.invalid == 3
    assert s.zero_count == 2
    assert s.quantile(0.0) == 0.0
    assert s.quantile(1.0) == pytest.approx(0.5, rel=0.01)


def test_empty_sketch():
    s = LatencySketch()
    assert s.quantile(0.5) is None
    assert s.mean is None
    d = s.to_dict()
    assert d["count"] == 0 and d["counts"] == []
    assert LatencySketch.from_dict(d).count == 0


def test_roundtrip_is_compact_and_json_able():
    s = LatencySketch()
    s.add_many(np.random.default_rng(3).lognormal(-4, 1, 100000))
    d = s.to_dict()
    text = json.dumps(d)
    assert len(d["counts"]) < 1000  # a handful of decades at 1 %: hundreds of buckets, not 100k values
    back = LatencySketch.from_dict(json.loads(text))
    assert back == s
    for q in (0.5, 0.9, 0.99):
        assert back.quantile(q) == s.quantile(q)


def test_from_dict_validates():
    with pytest.raises(ValueError):
        LatencySketch.from_dict({"alpha": 0.01, "offset": 0, "counts": [1, 2], "zero": 0, "count": 5})
    with pytest.raises(ValueError):
        LatencySketch.from_dict({"alpha": 0.01, "offset": 0, "counts": [-1], "zero": 0, "count": -1})


def test_bucket_bound_collapses_lowest_keeps_high_quantiles():
    s = LatencySketch(alpha=0.01, max_buckets=100)
    values = np.geomspace(1e-6, 10.0, 10000)
    s.add_many(values)
    assert s._bins.size <= 100
    assert s.count == 10000
    for q in (0.95, 0.99, 1.0):
        exact = _exact_quantile(values, q)
        assert abs(s.quantile(q) - exact) <= 0.01 * exact
    # single adds respect the bound too
    t = LatencySketch(alpha=0.01, max_buckets=50)
    for v in values[::10]:
        t.add(v)
    assert t._bins.size <= 50


def test_quantile_argument_checked():
    s = LatencySketch()
    s.add(1.0)
    with pytest.raises(ValueError):
        s.quantile(1.5)
    with pytest.raises(ValueError):
        LatencySketch(alpha=0)


def test_quantiles_from_one_pass_are_within_alpha_of_the_exact_ones():
    import numpy as np

    from raywatch.stats.sketch import LatencySketch

    rng = np.random.default_rng(7)
    qs = [0.0, 0.5, 0.9, 0.95, 0.99, 1.0]
    assert LatencySketch().quantiles(qs) == [None] * len(qs)
    for n in (1, 7, 300):
        s = LatencySketch()
        vals = rng.lognormal(-4, 1, n)
        vals[rng.random(n) < 0.2] = 0.0  # some zero latencies: the zero bucket
        s.add_many(vals)
        got = s.quantiles(qs)
        assert got == [s.quantile(q) for q in qs]
        exact = np.quantile(vals, qs, method="lower")
        for g, e in zip(got, exact.tolist()):
            assert (g == 0.0 == e) or abs(g - e) <= s.alpha * e * 1.0001 + 1e-12 or e == 0.0, (g, e)
    with pytest.raises(ValueError):
        s.quantiles([0.5, 1.5])
