"""The block kernels without Ray: a profile fitted block by block is ``Profile.fit``'s, and a
summary made block by block adds up to ``Profile.summarize``'s."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from raywatch.offline.blocks import summarize_block
from raywatch.offline.fit import (
    FitPlan, RefinePart, ScanPart, kinds_from_schema, numpy_quantiles, quantile_ranks, scan_block,
)
from raywatch.offline.merge import tree_merge
from raywatch.stats.profile import Profile
from rw_offline import assert_same_profile


def fit_in_blocks(data, kinds, sizes, *, bins=100, seed=0, max_categories=50, sample_size=10_000):
    """The two-pass fit over ``data`` (a pyarrow Table) cut into blocks of ``sizes`` rows (cycled)."""
    blocks, start, i = [], 0, 0
    while start < data.num_rows:
        n = sizes[i % len(sizes)]
        blocks.append(data.slice(start, n))
        start, i = start + n, i + 1
    scan = tree_merge([scan_block(b, kinds, bins=bins) for b in blocks], ScanPart.merge)
    plan = FitPlan(kinds, scan, bins=bins, max_categories=max_categories, sample_size=sample_size)
    return plan.finish(tree_merge([plan.refine_block(b, seed=seed) for b in blocks], RefinePart.merge))


def mixed_table(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(3, 1, n)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    ints = rng.integers(0, 7, n)  # ties: a discrete column
    c = rng.choice(["grocery", "travel", "online", "fuel"], n, p=[0.5, 0.2, 0.2, 0.1]).astype(object)
    c[rng.random(n) < 0.03] = None
    rare = np.array([f"id{v}" for v in rng.integers(0, n // 3 + 1, n)], dtype=object)
    b = pa.array(rng.random(n) < 0.3, mask=rng.random(n) < 0.02)
    return pa.table({"amount": x, "count": ints, "merchant": pa.array(c, type=pa.string()), "rare": rare.tolist(),
                     "flag": b, "constant": np.full(n, 4.5)})


@pytest.mark.parametrize("sizes", [[20_000], [7_001], [1_000, 3_333, 17], [1]])
def test_fit_in_blocks_is_profile_fit(sizes):
    data = mixed_table(20_000 if sizes != [1] else 600)
    kinds = kinds_from_schema(data.schema)
    want = Profile.fit(data, seed=0, max_categories=20)
    got = fit_in_blocks(data, kinds, sizes, max_categories=20)
    assert_same_profile(got, want)
    assert got.meta["reference_rows"] == data.num_rows


def test_kinds_follow_profile_fit_inference():
    data = mixed_table(500)
    assert kinds_from_schema(data.schema) == Profile.fit(data, seed=0).kinds
    with pytest.raises(ValueError, match="'empty' has no values"):
        kinds_from_schema(pa.schema([("empty", pa.null())]))
    with pytest.raises(ValueError, match="type timestamp"):
        kinds_from_schema(pa.schema([("t", pa.timestamp("s"))]))
    assert kinds_from_schema(data.schema, {"count": "categorical"})["count"] == "categorical"


def test_overridden_kinds_and_errors_match_profile_fit():
    data = mixed_table(3_000)
    kinds = kinds_from_schema(data.schema, {"count": "categorical"})
    assert_same_profile(fit_in_blocks(data, kinds, [999]), Profile.fit(data, {"count": "categorical"}, seed=0))
    text = pa.table({"x": ["a", "b"] * 10})
    with pytest.raises(ValueError, match="has no finite numbers \\(20 values of the wrong type\\)"):
        fit_in_blocks(text, {"x": "numerical"}, [7])
    with pytest.raises(ValueError, match="has no finite numbers \\(20 values of the wrong type\\)"):
        Profile.fit(text, {"x": "numerical"})


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-3, 3).map(float)),
                    min_size=1, max_size=300),
    sizes=st.lists(st.integers(1, 120), min_size=1, max_size=5),
    bins=st.integers(2, 40),
)
def test_any_numbers_any_blocks(values, sizes, bins):
    x = np.array(values, dtype=np.float64) + 0.0  # -0.0 == 0.0: which of the two an edge shows may differ
    if not np.isfinite(x).any():
        x[0] = 1.0
    data = pa.table({"x": x})
    assert_same_profile(fit_in_blocks(data, {"x": "numerical"}, sizes, bins=bins), Profile.fit(data, bins=bins, seed=0))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5000), bins=st.integers(2, 200), seed=st.integers(0, 2**32 - 1))
def test_numpy_quantiles_are_numpys(n, bins, seed):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.choice([rng.normal(size=n), rng.integers(-5, 5, n).astype(float), rng.lognormal(0, 3, n)]))
    qs = np.arange(1, bins) / bins
    prev, nxt, gamma = quantile_ranks(n, qs)
    got = numpy_quantiles(x[prev], x[nxt], gamma)
    assert got.tobytes() == np.quantile(x, qs).tobytes()


def test_summarize_block_is_profile_summarize():
    ref = mixed_table(5_000)
    profile = Profile.fit(ref, seed=0, max_categories=20)
    cur = mixed_table(3_000, seed=1).append_column("extra", pa.array(["x"] * 3_000))
    cur = cur.set_column(cur.column_names.index("merchant"), "merchant",
                         pa.array(np.where(np.arange(3_000) % 50 == 0, "new", cur.column("merchant").to_numpy(zero_copy_only=False))))
    for seed in (None, 3):
        got = summarize_block(profile, cur, seed=3) if seed else summarize_block(profile, cur.drop_columns(["amount"]), seed=0)
        want = profile.summarize(cur, seed=3) if seed else profile.summarize(cur.drop_columns(["amount"]), seed=0)
        assert got == want
    assert got.column("merchant").unseen == 60 and got.unknown_columns == {"extra": 3_000}
    # in blocks: the counts add up exactly, the moments to rounding
    parts = [summarize_block(profile, cur.slice(i, 700), seed=i) for i in range(0, 3_000, 700)]
    merged = tree_merge(parts, lambda a, b: a.merge(b))
    assert np.array_equal(merged.ints, want.ints) and np.array_equal(merged.counts, want.counts)
    np.testing.assert_allclose(merged.floats, want.floats, rtol=1e-9)


def test_text_fast_path_codes_like_profile_summarize():
    """Numbers written as text, numbers for text labels, dictionary arrays, only text columns."""
    profile = Profile.fit({"zip": ["75001", "75002", "01234", "75001"], "plan": ["a", "b", "a", "a"]}, seed=0)
    cur = pa.table({"zip": pa.array(["75001", "75001.0", "99999", None, "x"]), "plan": pa.array(["a", "c", None, "b", "a"])})
    assert summarize_block(profile, cur, seed=0) == profile.summarize(cur, seed=0)
    coded = pa.table({"zip": cur.column("zip").dictionary_encode(), "plan": cur.column("plan").dictionary_encode()})
    assert summarize_block(profile, coded, seed=0) == profile.summarize(cur, seed=0)
    assert summarize_block(profile, cur.select(["plan"]), seed=0) == profile.summarize(cur.select(["plan"]), seed=0)


def test_fit_plan_refuses_what_profile_fit_refuses():
    with pytest.raises(ValueError, match="no rows"):
        FitPlan({"x": "numerical"}, ScanPart())
    with pytest.raises(ValueError, match="no boolean values"):
        data = pa.table({"b": pa.array([None, None], type=pa.bool_())})
        fit_in_blocks(data, {"b": "boolean"}, [1])
    with pytest.raises(ValueError, match="all missing"):
        fit_in_blocks(pa.table({"c": pa.array([None, None], type=pa.string())}), {"c": "categorical"}, [1])


def test_label_limit_marks_the_column_approximate(monkeypatch):
    import raywatch.offline.fit as fit

    monkeypatch.setattr(fit, "LABEL_LIMIT", 10)
    data = pa.table({"id": [f"u{i % 30}" for i in range(300)]})
    profile = fit_in_blocks(data, {"id": "categorical"}, [100], max_categories=5)
    assert profile.meta["approximate"] == ["id: more than 10 distinct labels"]
    assert len(profile.specs["id"].categories) == 5 and not math.isnan(profile.reference.rows)
