import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raywatch.stats import grouped
from raywatch.stats.grouped import summarize_groups
from raywatch.stats.profile import Profile


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(0)
    return Profile.fit(
        {"a": rng.normal(size=3000), "b": rng.exponential(size=3000), "k": rng.integers(0, 4, 3000),
         "c": rng.choice(["x", "y", "z"], 3000), "t": rng.random(3000) < 0.3},
        seed=0, bins=20, window_sample_size=10,
    )


def _same(got, want, batch, rows):
    assert got.rows == want.rows == len(rows)
    assert np.array_equal(got.ints, want.ints), (got.ints, want.ints)
    assert np.array_equal(got.counts, want.counts)
    assert np.allclose(got.floats, want.floats, rtol=1e-9, atol=1e-9)
    assert got.unknown_columns == want.unknown_columns
    for name in got.names:
        g, w = got.column(name), want.column(name)
        assert g.sample.size == w.sample.size  # min(k, finite values)
        if g.kind == "numerical" and name in batch:
            x = grouped._numerical(batch[name][rows])[0]
            assert set(g.sample.tolist()) <= set(x[np.isfinite(x)].tolist())


_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.none(),
    st.sampled_from(["x", "y", "q", True, 7]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    data=st.data(),
    groups=st.integers(1, 5),
)
def test_each_group_equals_summarize_of_its_rows(profile, n, data, groups):
    batch = {
        "a": np.array(data.draw(st.lists(_values, min_size=n, max_size=n)), dtype=object),
        "b": np.array(data.draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n))),
        "c": np.array(data.draw(st.lists(st.sampled_from(["x", "y", "z", "new"]), min_size=n, max_size=n))),
        "t": np.array(data.draw(st.lists(st.sampled_from([True, False, None, "yes"]), min_size=n, max_size=n)), dtype=object),
        "extra": np.zeros(n),
    }  # "k" is absent: missing for every row
    label = np.array(data.draw(st.lists(st.integers(0, groups - 1), min_size=n, max_size=n)))
    present = np.unique(label)
    order = np.concatenate([np.flatnonzero(label == g) for g in present])
    bounds = np.concatenate(([0], np.cumsum([np.count_nonzero(label == g) for g in present])))
    got = summarize_groups(profile, batch, order, bounds, seed=1, total=True)
    whole = got.pop()
    _same(whole, profile.summarize(batch, seed=1), batch, np.arange(n))
    for g, summary in zip(present, got):
        rows = np.flatnonzero(label == g)
        want = profile.summarize({k: v[rows] for k, v in batch.items()}, seed=1)
        _same(summary, want, batch, rows)
        assert summary.merge(want).rows == 2 * rows.size  # made to the same shape: they merge


def test_large_groups_and_the_samples_law(profile):
    rng = np.random.default_rng(3)
    n = 10_000
    batch = {"a": rng.normal(size=n), "b": rng.exponential(size=n), "k": rng.integers(0, 4, n),
             "c": rng.choice(["x", "y", "z"], n), "t": rng.random(n) < 0.5}
    label = rng.choice(20, n, p=np.arange(1, 21) / 210)  # groups of about 50 to 950 rows
    order = np.argsort(label, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(label))))
    got = summarize_groups(profile, batch, order, bounds, seed=2)
    for g in range(20):
        rows = order[bounds[g] : bounds[g + 1]]
        want = profile.summarize({k: v[rows] for k, v in batch.items()})
        assert np.array_equal(got[g].ints, want.ints) and np.array_equal(got[g].counts, want.counts)
        assert np.allclose(got[g].floats, want.floats, rtol=1e-9)
        sample = got[g].column("a").sample
        assert sample.size == 10 and set(sample.tolist()) <= set(batch["a"][rows].tolist())
    # bottom-k by uniform keys: each row of a group is sampled with probability k / size
    hits = np.zeros(n)
    for s in range(200):
        for g, summary in enumerate(summarize_groups(profile, batch, order, bounds, seed=100 + s)):
            rows = order[bounds[g] : bounds[g + 1]]
            hits[rows[np.isin(batch["a"][rows], summary.column("a").sample)]] += 1
    expect = 200 * 10 / np.bincount(label)[label]
    assert abs(hits.sum() - expect.sum()) / expect.sum() < 0.01
    assert np.corrcoef(hits, expect)[0, 1] > 0.5
    assert abs(np.corrcoef(hits, batch["a"])[0, 1]) < 0.05  # no preference for any value
    assert np.mean(hits > 0) > 0.9


def test_falls_back_to_one_summarize_per_group_when_the_summary_has_unknown_fields(profile, monkeypatch):
    monkeypatch.setattr(grouped, "SUPPORTED", False)
    batch = {"a": np.array([1.0, 2.0, 3.0]), "c": np.array(["x", "y", "x"])}
    got = summarize_groups(profile, batch, np.array([0, 2, 1]), np.array([0, 2, 3]), seed=0)
    want = profile.summarize({"a": np.array([1.0, 3.0]), "c": np.array(["x", "x"])})
    assert np.array_equal(got[0].ints, want.ints) and np.array_equal(got[0].counts, want.counts)
    with pytest.raises(ValueError, match="at least one row"):
        summarize_groups(profile, batch, np.array([0, 1, 2]), np.array([0, 0, 3]))


def test_groups_carry_the_profiles_sections_as_summarize_does():
    """A profile with extensions (PCA, outliers): each group's sections equal ``summarize`` of
    its rows, and the total's are the merge of the groups'."""
    rng = np.random.default_rng(3)
    ref = {f"x{i}": rng.normal(size=4000) for i in range(4)}
    profile = Profile.fit(ref, seed=0, pca=True, outliers=True, correlation=True)
    assert profile.extensions
    batch = {f"x{i}": rng.normal(size=600) for i in range(4)}
    order = rng.permutation(600)
    bounds = np.array([0, 200, 450, 600])
    parts = summarize_groups(profile, batch, order, bounds, seed=1, total=True)
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        own = profile.summarize({k: v[order[a:b]] for k, v in batch.items()}, seed=2)
        assert set(parts[g].sections) == set(own.sections) and parts[g].sections
        for name in own.sections:
            assert parts[g].sections[name] == own.sections[name], name
    whole = profile.summarize(batch, seed=3)
    for name in whole.sections:  # merged from the groups': equal to rounding (Chan's update)
        (ma, aa), (mb, ab) = parts[-1].sections[name].state(), whole.sections[name].state()
        assert ma == mb and aa.keys() == ab.keys(), name
        for key in aa:
            np.testing.assert_allclose(aa[key], ab[key], rtol=1e-9, atol=1e-9, err_msg=f"{name}.{key}")


def test_large_string_columns_tally_per_group_as_summarize(profile):
    # ≥ strings.MIN_ROWS rows of short labels: the packed codes path, unseen and empty labels included
    rng = np.random.default_rng(5)
    n = 6000
    batch = {"a": rng.normal(size=n), "c": np.array(["x", "y", "z", "new", "", "xx"])[rng.integers(0, 6, n)]}
    label = rng.integers(0, 7, n)
    order = np.argsort(label, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(label))))
    got = summarize_groups(profile, batch, order, bounds, seed=4, total=True)
    assert got[-1].column("c").unseen > 0
    for g in range(7):
        rows = order[bounds[g] : bounds[g + 1]]
        want = profile.summarize({k: v[rows] for k, v in batch.items()})
        assert np.array_equal(got[g].ints, want.ints) and np.array_equal(got[g].counts, want.counts)
    want = profile.summarize(batch)
    assert np.array_equal(got[-1].ints, want.ints) and np.array_equal(got[-1].counts, want.counts)


def test_the_total_of_a_clean_batch_keeps_the_bottom_k_of_the_groups_samples(profile):
    rng = np.random.default_rng(6)
    n = 3000
    batch = {"a": rng.normal(size=n), "b": rng.exponential(size=n), "k": rng.integers(0, 4, n),
             "c": rng.choice(["x", "y", "z"], n), "t": rng.random(n) < 0.5}
    label = rng.integers(0, 9, n)
    order = np.argsort(label, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(label))))
    *parts, whole = summarize_groups(profile, batch, order, bounds, seed=7, total=True)
    _same(whole, profile.summarize(batch, seed=7), batch, np.arange(n))
    for name in ("a", "b", "k"):
        i = whole.index(name)
        keys = np.concatenate([p.samples[i][1] for p in parts])
        values = np.concatenate([p.samples[i][0] for p in parts])
        best = np.argsort(keys)[:10]
        assert whole.samples[i][1].tolist() == keys[best].tolist()
        assert whole.samples[i][0].tolist() == values[best].tolist()


@pytest.mark.parametrize("sizes", [
    [3, 9, 10, 11, 40, 7],  # runs of similar lengths, some shorter than k: all at once
    [5000, 2, 3, 12, 30, 1],  # very unequal runs: one run at a time
    [3, 9, 10, 7],  # no run longer than k: every row sampled
], ids=["padded", "per-run", "short"])
def test_clean_samples_are_the_bottom_k_of_uniform_keys_per_group(profile, sizes):
    rng = np.random.default_rng(8)
    n = sum(sizes)
    batch = {"a": rng.normal(size=n), "b": rng.exponential(size=n), "k": rng.integers(0, 4, n).astype(float)}
    label = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    order = np.argsort(label, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    hits = np.zeros(n)
    for s in range(300):
        got = summarize_groups(profile, batch, order, bounds, seed=s)
        for g, summary in enumerate(got):
            rows = order[bounds[g] : bounds[g + 1]]
            values, keys = summary.samples[summary.index("a")]
            assert values.size == keys.size == min(10, sizes[g])
            assert np.all(np.diff(keys) > 0) and np.all((keys >= 0) & (keys < 1))
            b_values, b_keys = summary.samples[summary.index("b")]
            assert b_keys is keys or np.array_equal(b_keys, keys)  # one draw shared by the columns
            assert set(values.tolist()) <= set(batch["a"][rows].tolist())
            assert set(b_values.tolist()) <= set(batch["b"][rows].tolist())
            hits[rows[np.isin(batch["a"][rows], values)]] += 1
    # each row of a group is in its sample with probability min(k, size) / size
    p = np.minimum(10, np.array(sizes)) / np.array(sizes)
    for g in range(len(sizes)):
        rows = order[bounds[g] : bounds[g + 1]]
        assert abs(hits[rows].mean() / 300 - p[g]) < 0.05 + 3 * np.sqrt(p[g] * (1 - p[g]) / (300 * rows.size)), g
        sd = np.sqrt(300 * p[g] * (1 - p[g]))
        assert np.all(np.abs(hits[rows] - 300 * p[g]) < 6 * sd + 5), g  # no row favoured
    big = order[bounds[0] : bounds[1]]
    if sizes[0] > 1000:  # no preference for any value within a large run
        assert abs(np.corrcoef(hits[big], batch["a"][big])[0, 1]) < 0.1


def test_moments_of_far_off_and_constant_groups_match_two_passes():
    """Groups whose mean is far from 0 against their spread (or that have no spread) are where
    the one-pass sum of squares loses precision; their moments must still match summarize's."""
    rng = np.random.default_rng(9)
    ref = {"x": rng.normal(1e6, 1.0, 2000), "y": rng.normal(0, 1, 2000)}
    profile = Profile.fit(ref, seed=0, bins=10)
    parts = [c + rng.normal(0, 1e-3, 100) for c in (1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e9, -4e8)]
    parts += [np.full(100, 7.0), rng.normal(0, 1, 100)]
    x = np.concatenate(parts)
    n = x.size
    batch = {"x": x, "y": rng.normal(0, 1, n)}
    bounds = np.arange(0, n + 1, 100)
    got = summarize_groups(profile, batch, np.arange(n), bounds, seed=0)
    for g in range(len(parts)):
        rows = np.arange(bounds[g], bounds[g + 1])
        want = profile.summarize({k: v[rows] for k, v in batch.items()}, seed=0)
        i = want.index("x")
        assert got[g].floats[i, 0] == pytest.approx(want.floats[i, 0], rel=1e-12)
        assert got[g].floats[i, 1] == pytest.approx(want.floats[i, 1], rel=1e-6, abs=1e-12), g
    assert got[8].floats[got[8].index("x"), 1] == 0.0  # a constant group has no spread
