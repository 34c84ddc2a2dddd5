import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raywatch.stats import FormatError, Profile, WindowSummary
from raywatch.stats import sample as bottomk


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(11)
    n = 5000
    return Profile.fit(
        {
            "x": rng.normal(size=n),
            "y": rng.exponential(size=n),
            "color": rng.choice(["red", "green", "blue"], n),
            "flag": rng.random(n) < 0.5,
        },
        bins=20,
        window_sample_size=50,
        seed=0,
    )


floats = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(float("-inf")),
    st.none(),
)
colors = st.one_of(st.sampled_from(["red", "green", "blue", "purple"]), st.none(), st.just(3))
flags = st.one_of(st.booleans(), st.none(), st.just("yes"))
rows = st.lists(st.fixed_dictionaries({"x": floats, "y": floats, "color": colors, "flag": flags}), max_size=60)


def _exact_parts(s: WindowSummary):
    return s.rows, s.ints.tolist(), s.counts.tolist(), s.unknown_columns


def _assert_moments_close(a: WindowSummary, b: WindowSummary):
    np.testing.assert_allclose(a.floats[:, 0], b.floats[:, 0], rtol=1e-9, atol=1e-6)  # mean
    np.testing.assert_allclose(a.floats[:, 1], b.floats[:, 1], rtol=1e-7, atol=1e-3)  # m2
    np.testing.assert_array_equal(a.floats[:, 2:4], b.floats[:, 2:4])  # min, max
    np.testing.assert_allclose(a.floats[:, 4:], b.floats[:, 4:], rtol=1e-9, atol=1e-6)  # outer-bin sums


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows, rows, rows)
def test_merge_equals_summary_of_concatenation(profile, a, b, c):
    sa, sb, sc = (profile.summarize(part) for part in (a, b, c))
    whole = profile.summarize(a + b + c)
    left = sa.merge(sb).merge(sc)
    right = sc.merge(sb.merge(sa))
    assert _exact_parts(left) == _exact_parts(whole) == _exact_parts(right)
    _assert_moments_close(left, whole)
    _assert_moments_close(right, whole)
    # the merged sample is a subset of the data of the right size
    k = profile.window_sample_size
    for name in ("x", "y"):
        values = left.column(name).sample
        finite = [r[name] for r in a + b + c if isinstance(r[name], float) and np.isfinite(r[name])]
        assert values.size == min(k, len(finite))
        assert all(v in finite for v in values.tolist())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows)
def test_bytes_round_trip(profile, batch):
    s = profile.summarize(batch)
    blob = s.to_bytes()
    assert WindowSummary.from_bytes(blob) == s
    assert WindowSummary.from_bytes(WindowSummary.from_bytes(blob).to_bytes()) == s


def test_quality_counters(profile):
    batch = {
        "x": np.array([0.1, np.nan, np.inf, -np.inf, 1e9, None, "oops", True], dtype=object),
        "color": np.array(["red", None, 3, "purple", float("nan"), ["unhashable"], "blue", "red"], dtype=object),
        "flag": np.array([True, False, None, "yes", 1, 0, 2.0, np.nan], dtype=object),
        "new_column": np.zeros(8),
    }
    s = profile.summarize(batch)
    x = s.column("x")
    assert (x.rows, x.missing, x.nonfinite, x.wrong_type, x.out_of_range, x.count) == (8, 2, 2, 1, 1, 3)
    color = s.column("color")
    assert (color.rows, color.missing, color.wrong_type, color.unseen, color.count) == (8, 2, 2, 1, 4)
    assert color.counts[-1] == 1  # the unseen label sits in the overflow bucket
    flag = s.column("flag")
    assert (flag.missing, flag.wrong_type, flag.count) == (2, 2, 4)
    assert flag.counts.tolist() == [2, 2, 0]
    y = s.column("y")  # absent from the batch: missing for every row
    assert (y.rows, y.missing, y.count) == (8, 8, 0)
    assert s.unknown_columns == {"new_column": 8}


def test_no_numpy_warnings_on_bad_input(profile):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for batch in (
            {},
            [],
            {"x": []},
            {"x": [None] * 5},
            {"x": [np.inf, -np.inf]},
            {"x": [1e308, 1e308, -1e308]},
            {"x": np.array(["a", "b"])},
            {"color": np.array([1.5, np.nan])},
            {"color": np.array([b"red", b"blue"])},
            {"color": np.array([1, 2, 3])},
            {"flag": np.array([0, 1, 1])},
            {"flag": np.array(["True"])},
        ):
            s = profile.summarize(batch)
            s.merge(profile.empty_summary()).to_bytes()
            [s.column(n) for n in s.columns]


def test_numpy_typed_inputs_follow_the_same_rules(profile):
    s = profile.summarize({"color": np.array(["red", "red", "teal"]), "flag": np.array([0, 1, 1]), "x": np.arange(3)})
    assert s.column("color").counts.tolist() == [int(c == "red") * 2 for c in profile.categories("color")] + [1]
    assert s.column("color").unseen == 1
    assert s.column("flag").counts.tolist() == [1, 2, 0]
    assert s.column("x").count == 3 and s.column("x").mean == 1.0
    s = profile.summarize({"color": np.array([1, 2]), "flag": np.array(["yes", "no"])})
    assert s.column("color").wrong_type == 2 and s.column("flag").wrong_type == 2


def test_size_does_not_depend_on_rows():
    rng = np.random.default_rng(0)
    cols = {f"f{i}": rng.normal(size=20_000) for i in range(20)}
    profile = Profile.fit(cols, seed=0)  # defaults: 100 bins, 100-value window sample
    small = profile.summarize({k: v[:1000] for k, v in cols.items()})
    big = profile.summarize(cols)
    # equal up to the digits of the row count in the header
    assert abs(len(small.to_bytes()) - len(big.to_bytes())) <= 8
    assert len(big.to_bytes()) <= 64 * 1024
    assert len(big.merge(small).merge(big).to_bytes()) <= 64 * 1024


def test_merge_rejects_other_profiles(profile):
    other = Profile.fit({"x": [1.0, 2.0, 3.0]}, seed=0)
    with pytest.raises(ValueError, match="different profiles"):
        profile.empty_summary().merge(other.empty_summary())
    with pytest.raises(TypeError):
        profile.empty_summary().merge(object())
    with pytest.raises(ValueError, match="at least one"):
        WindowSummary.merge_all([])


def test_from_bytes_rejects_damage(profile):
    blob = profile.summarize({"x": [1.0, 2.0]}).to_bytes()
    with pytest.raises(FormatError, match="truncated window summary"):
        WindowSummary.from_bytes(blob[:-3])
    with pytest.raises(FormatError, match="checksum"):
        WindowSummary.from_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(FormatError, match="profile, not a window summary"):
        WindowSummary.from_bytes(profile.to_bytes())
    with pytest.raises(FormatError, match="expected bytes"):
        WindowSummary.from_bytes("text")


def test_merge_all_and_views(profile):
    parts = [profile.summarize({"x": [float(i)]}, seed=i) for i in range(5)]
    s = WindowSummary.merge_all(parts)
    assert s.rows == 5 and s.column("x").mean == 2.0 and s.column("x").variance == 2.0
    assert s.sample_complete("x")
    with pytest.raises(KeyError, match="no column 'zz'"):
        s.column("zz")
    assert "rows=5" in repr(s)


def test_bottom_k_draw_has_the_law_of_keying_every_row():
    # the largest kept key of a bottom-k sample of n is the k-th order statistic: mean k/(n+1)
    rng = np.random.default_rng(0)
    n, k = 1000, 10
    tops = [bottomk.draw(np.arange(float(n)), k, rng)[1][-1] for _ in range(4000)]
    assert np.mean(tops) == pytest.approx(k / (n + 1), rel=0.03)


def test_merged_sample_is_uniform_over_the_union():
    # merging a sample of 1,000 values with one of 9,000: ~10 % of the kept values come from the first
    rng = np.random.default_rng(1)
    k, trials, from_a = 50, 400, 0
    for _ in range(trials):
        a = bottomk.draw(np.zeros(1000), k, rng)
        b = bottomk.draw(np.ones(9000), k, rng)
        values, _ = bottomk.merge(a, b, k)
        from_a += int(np.sum(values == 0))
    share = from_a / (k * trials)
    assert abs(share - 0.1) < 0.01  # sd of the share is ~0.002


def _awkward_columns(rng, n):
    """Columns with NaN, ±inf, values exactly on bin edges and outside the reference range."""
    X = rng.normal(size=(4, n))
    X[0, rng.random(n) < 0.2] = np.nan
    X[1, rng.random(n) < 0.1] = np.inf
    X[1, rng.random(n) < 0.1] = -np.inf
    X[2, : n // 2] = np.round(X[2, : n // 2] * 4) / 4  # on the quarter edges below
    X[3] = np.nan  # nothing finite at all
    edges = [np.linspace(-1, 1, 9), np.array([0.0]), np.linspace(-2, 2, 17), np.empty(0)]
    lo, hi = np.array([-1.5, -1.0, -2.0, 0.0]), np.array([1.5, 1.0, 2.0, 0.0])
    return X, edges, lo, hi


@pytest.mark.parametrize("n", [1, 7, 300])
def test_batched_kernel_agrees_with_the_per_column_kernel(n):
    from raywatch.stats.summary import numerical_layout, numerical_state, numerical_states

    rng = np.random.default_rng(n)
    X, edges, lo, hi = _awkward_columns(rng, n)
    layout = numerical_layout(edges, lo, hi)
    ints, floats, counts, samples = numerical_states(X, layout, 5, np.random.default_rng(0))
    pos = 0
    for i in range(X.shape[0]):
        one_ints, one_floats, one_counts, one_sample = numerical_state(
            X[i].copy(), edges[i], (lo[i], hi[i]), 5, np.random.default_rng(0)
        )
        assert ints[i].tolist() == one_ints
        np.testing.assert_allclose(floats[i], one_floats, rtol=1e-12, atol=1e-9)
        assert counts[pos : pos + edges[i].size + 1].tolist() == one_counts.tolist()
        pos += edges[i].size + 1
        # same size; values drawn from the column's finite values, keys increasing in (0, 1)
        assert samples[i][0].size == one_sample[0].size == min(5, one_ints[-1])
        assert np.isin(samples[i][0], X[i][np.isfinite(X[i])]).all()
        assert np.all(np.diff(samples[i][1]) > 0) and np.all((samples[i][1] >= 0) & (samples[i][1] < 1))
    assert pos == counts.size


def test_small_and_large_batch_paths_summarize_alike(profile, monkeypatch):
    from raywatch.stats import profile as profile_module

    rng = np.random.default_rng(5)
    batch = {"x": rng.normal(size=500), "y": rng.exponential(size=500), "color": rng.choice(["red", "blue"], 500)}
    batch["x"][::7] = np.nan
    batch["y"][::11] = np.inf
    small = profile.summarize(batch, seed=1)
    monkeypatch.setattr(profile_module, "SMALL_BATCH_ROWS", 0)
    large = profile.summarize(batch, seed=1)
    assert _exact_parts(small) == _exact_parts(large)
    _assert_moments_close(small, large)
    assert [s[0].size for s in small.samples] == [s[0].size for s in large.samples]


def test_batched_sample_has_the_law_of_keying_every_row():
    from raywatch.stats.summary import numerical_layout, numerical_states

    # the largest kept key is the k-th of n uniform order statistics (mean k/(n+1)), and every
    # finite value is kept equally often, whichever column and position it is in
    rng = np.random.default_rng(2)
    n, k, trials = 40, 8, 3000
    X = np.tile(np.arange(float(n)), (2, 1))
    X[1, :10] = np.nan  # 30 finite values
    layout = numerical_layout([np.array([10.0, 20.0])] * 2, [0.0, 0.0], [40.0, 40.0])
    tops, kept = [], np.zeros((2, n))
    for _ in range(trials):
        _, _, _, samples = numerical_states(X, layout, k, rng)
        tops.append(samples[0][1][-1])
        for i in range(2):
            kept[i, samples[i][0].astype(int)] += 1
    assert np.mean(tops) == pytest.approx(k / (n + 1), rel=0.03)
    assert kept[1, :10].sum() == 0
    for i, m in ((0, n), (1, 30)):
        observed = kept[i, n - m :]
        expected = trials * k / m
        chi2 = float(((observed - expected) ** 2 / expected).sum())
        assert chi2 < 2 * m  # χ² with m - 1 dof: far above 2 m has odds below 1e-6
