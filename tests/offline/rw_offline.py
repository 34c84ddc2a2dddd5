"""Helpers of the offline tests (imported as ``rw_offline``: a unique name, since test
folders are not packages)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from raywatch.stats.profile import Profile


def assert_same_profile(got: Profile, want: Profile) -> None:
    assert got.fingerprint == want.fingerprint
    assert got.kinds == want.kinds
    for name, spec in want.specs.items():
        g = got.specs[name]
        assert g.edges.tolist() == spec.edges.tolist(), name
        assert (g.categories, g.known, g.families, g.singletons) == \
            (spec.categories, spec.known, spec.families, spec.singletons), name
        assert np.array_equal([g.lo, g.hi], [spec.lo, spec.hi], equal_nan=True), name  # NaN for labels: not ==
    r, w = got.reference, want.reference
    assert r.rows == w.rows and r.sample_size == w.sample_size
    assert np.array_equal(r.ints, w.ints)
    assert np.array_equal(r.counts, w.counts)
    np.testing.assert_allclose(r.floats, w.floats, rtol=1e-9, atol=1e-9)
    assert [v.size for v, _ in r.samples] == [v.size for v, _ in w.samples]


def frame(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    """Rows of a fraud-like table: numbers with missing values, a count with ties, text labels
    with missing ones, a flag; ``shift`` moves ``amount`` by that many of its standard deviations."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, n) + shift * 60.0
    amount[rng.random(n) < 0.02] = np.nan
    merchant = rng.choice(["grocery", "travel", "online", "fuel"], n, p=[0.5, 0.2, 0.2, 0.1]).astype(object)
    merchant[rng.random(n) < 0.02] = None
    return pa.table({
        "amount": amount,
        "hour": rng.integers(0, 24, n),
        "merchant": pa.array(merchant, type=pa.string()),
        "card_present": rng.random(n) < 0.7,
        "score": rng.random(n),
    })


def assert_same_summary(got, want) -> None:
    """Counts exact, moments to rounding, samples of the same size."""
    assert got.fingerprint == want.fingerprint and got.rows == want.rows
    assert np.array_equal(got.ints, want.ints)
    assert np.array_equal(got.counts, want.counts)
    np.testing.assert_allclose(got.floats, want.floats, rtol=1e-9, atol=1e-9)
    assert [v.size for v, _ in got.samples] == [v.size for v, _ in want.samples]
    assert got.unknown_columns == want.unknown_columns


def assert_same_report(got, want) -> None:
    """The same verdicts; the figures computed from counts equal, effect sizes to rounding."""
    assert got.dataset_drift == want.dataset_drift and got.drifted_columns == want.drifted_columns
    assert (got.rows_reference, got.rows_current) == (want.rows_reference, want.rows_current)
    for name, w in want.columns.items():
        g = got.columns[name]
        assert (g.method, g.tested, g.drifted, g.figures) == (w.method, w.tested, w.drifted, w.figures), name
        assert (g.statistic, g.p_value, g.p_value_adjusted) == (w.statistic, w.p_value, w.p_value_adjusted), name
        if w.effect_size is not None:
            assert abs(g.effect_size - w.effect_size) <= 1e-9 * max(1.0, abs(w.effect_size)), name
    for name, w in want.quality.items():
        assert got.quality[name].issues == w.issues, name
