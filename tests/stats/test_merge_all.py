"""WindowSummary.merge_all (one pass over every column and part) equals the pairwise merge
raywatch has always done: the previous implementation, kept here as the reference."""

import math

import numpy as np
import pytest

from raywatch.stats import sample, sections as sec
from raywatch.stats.profile import Profile
from raywatch.stats.summary import MAX_UNKNOWN_COLUMNS, WindowSummary


def pairwise(a: WindowSummary, b: WindowSummary) -> WindowSummary:
    """The pairwise merge as it was before merge_all took every part at once."""
    na, nb = a.ints[:, 6].astype(np.float64), b.ints[:, 6].astype(np.float64)
    n = na + nb
    safe = np.where(n > 0, n, 1.0)
    fa, fb = a.floats, b.floats
    with np.errstate(over="ignore", invalid="ignore"):
        delta = fb[:, 0] - fa[:, 0]
        mean = fa[:, 0] + delta * (nb / safe)
        m2 = fa[:, 1] + fb[:, 1] + delta * delta * (na * nb / safe)
    floats = np.column_stack((mean, m2, np.minimum(fa[:, 2], fb[:, 2]), np.maximum(fa[:, 3], fb[:, 3]),
                              fa[:, 4:] + fb[:, 4:]))
    k = min(a.sample_size, b.sample_size)
    unknown = dict(a.unknown_columns)
    for name, rows in b.unknown_columns.items():
        if name in unknown or len(unknown) < MAX_UNKNOWN_COLUMNS:
            unknown[name] = unknown.get(name, 0) + rows
    return WindowSummary(
        a.fingerprint, a.names, a.kinds, a.n_bins, k, rows=a.rows + b.rows, ints=a.ints + b.ints, floats=floats,
        counts=a.counts + b.counts, samples=[sample.merge(x, y, k) for x, y in zip(a.samples, b.samples)],
        unknown_columns=unknown,
        sections=sec.merge_sections(a.sections, b.sections) if a.sections or b.sections else None,
    )


@pytest.fixture(scope="module")
def profiles():
    rng = np.random.default_rng(3)
    ref = {"x": rng.normal(size=3000), "y": rng.lognormal(size=3000), "d": rng.integers(0, 4, 3000).astype(float),
           "c": rng.choice(["a", "b", "c"], 3000), "score": rng.random(3000)}
    ref["label"] = (rng.random(3000) < ref["score"]).astype(int)
    plain = Profile.fit({k: v for k, v in ref.items() if k != "label"}, seed=0)
    extended = Profile.fit(ref, seed=0, correlation=["x", "y"], outliers={"columns": ["x", "y"]},
                           performance={"target": "label", "scores": "score"})
    return plain, extended


def _part(profile, rng, i):
    n = int(rng.integers(0, 400))
    batch = {"x": rng.normal(size=n), "y": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(size=n)),
             "d": rng.integers(0, 4, n).astype(float), "c": rng.choice(["a", "b", "z"], n), "score": rng.random(n)}
    if i % 3 == 0:
        batch[f"unknown{i}"] = np.zeros(n)
    if i % 4 == 1:
        del batch["y"]  # an absent column: missing for every row, no sample
    return profile.summarize(batch, seed=i, sample_size=[100, 50, 100, 7][i % 4])


@pytest.mark.parametrize("parts", [2, 3, 5, 12])
@pytest.mark.parametrize("which", [0, 1])
def test_merge_all_equals_the_previous_pairwise_merge(profiles, parts, which):
    profile = profiles[which]
    rng = np.random.default_rng(parts * 10 + which)
    summaries = [_part(profile, rng, i) for i in range(parts)]
    expected = summaries[0]
    for s in summaries[1:]:
        expected = pairwise(expected, s)
    assert WindowSummary.merge_all(summaries) == expected
    assert summaries[0].merge(summaries[1]) == pairwise(summaries[0], summaries[1])
    assert WindowSummary.merge_all(summaries[:1]) is summaries[0]


def test_merge_all_of_empty_samples(profiles):
    profile = profiles[0]
    empty = [profile.empty_summary() for _ in range(3)]
    merged = WindowSummary.merge_all(empty)
    assert merged.rows == 0 and all(v.size == 0 for v, _ in merged.samples)
    assert math.isinf(merged.column("x").min)
    with pytest.raises(ValueError):
        WindowSummary.merge_all([])
