"""Large batches are summarized on every core and give the one-thread path's summary."""

import threading

import numpy as np
import pytest

from raywatch.stats import parallel
from raywatch.stats.profile import Profile


def _columns(rng, n):
    x = rng.normal(size=n)
    x[::97] = np.nan
    x[::501] = np.inf
    mixed = rng.normal(size=n).astype(object)
    mixed[::333] = "oops"  # wrong type: the object path, with fewer values than rows
    mixed[::777] = None
    return {
        "x": x,
        "y": rng.lognormal(size=n),
        "ints": rng.integers(0, 50, n),
        "mixed": mixed,
        "color": np.array(["red", "green", "blue", "teal"])[rng.integers(0, 4, n)],
        "flag": rng.random(n) < 0.3,
        "code": rng.integers(0, 8, n).astype(object),
    }


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(0)
    cols = _columns(rng, 20_000)
    cols["extra"] = rng.normal(size=20_000)  # absent from the batches: missing for every row
    return Profile.fit(cols, kinds={"code": "categorical", "mixed": "numerical"}, seed=0)


@pytest.mark.parametrize("rows", [parallel.PARALLEL_MIN_ROWS, 120_000])
def test_the_pool_gives_the_one_thread_summary(profile, rows, monkeypatch):
    batch = _columns(np.random.default_rng(rows), rows)
    assert parallel.pool() is not None or parallel.workers() == 1
    on_pool = profile.summarize(batch, seed=7)
    names = {t.name for t in threading.enumerate()}
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ROWS", 10**12)
    one_thread = profile.summarize(batch, seed=7)
    assert on_pool == one_thread  # counts, moments, quality counters and samples alike
    assert on_pool.column("mixed").wrong_type > 0 and on_pool.column("extra").missing == rows
    if parallel.workers() > 1:
        assert any(n.startswith("raywatch-columns") for n in names)


def test_small_batches_never_use_the_pool(profile, monkeypatch):
    def refuse():
        raise AssertionError("a small batch reached for the pool")

    monkeypatch.setattr(parallel, "pool", refuse)
    for rows in (1, 200, 1000, 4096, parallel.PARALLEL_MIN_ROWS - 1):
        assert profile.summarize(_columns(np.random.default_rng(rows), rows), seed=1).rows == rows


def test_the_pool_is_made_once_and_sized_to_the_cores():
    p = parallel.pool()
    if parallel.workers() == 1:
        assert p is None
    else:
        assert p is parallel.pool() and p._max_workers == parallel.workers()
