"""Embeddings: bounded sketches; a known shift in a 1,536-dimensional embedding is caught."""

import json

import numpy as np
import pytest

from raywatch.drift import detect_drift
from raywatch.drift.embedding import embedding_drift
from raywatch.stats import Profile, WindowSummary
from raywatch.stats.sections import Batch
from raywatch.stats.vectors import VectorSketch

DIM = 1536


@pytest.fixture(scope="module")
def topics():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, DIM)) * 0.6
    return centers / np.linalg.norm(centers, axis=1, keepdims=True) * 8.0


def embed(rng, topics, n, weights=(0.4, 0.3, 0.15, 0.1, 0.05), scale=1.0):
    """Sentence-embedding-like rows: a topic centre plus anisotropic noise."""
    k = rng.choice(len(weights), size=n, p=np.asarray(weights) / sum(weights))
    noise = rng.normal(size=(n, DIM)) * np.linspace(0.05, 0.3, DIM)
    return (topics[k] + noise) * scale


@pytest.fixture(scope="module")
def profile(topics):
    rng = np.random.default_rng(1)
    ref = embed(rng, topics, 8000)
    return Profile.fit({"emb": ref, "length": rng.poisson(20, 8000).astype(float)}, vectors=["emb"], seed=0)


def test_a_known_shift_in_a_1536_dim_embedding_is_caught(profile, topics):
    rng = np.random.default_rng(2)
    shifted = embed(rng, topics, 1000, weights=(0.1, 0.2, 0.2, 0.2, 0.3))  # the topic mix moved
    report = detect_drift(profile, {"emb": shifted, "length": rng.poisson(20, 1000).astype(float)})
    r = report.extensions["vector:emb"]
    assert r.tested and r.drifted and r.mean_p_value < 1e-6 and r.mean_effect > 0.1
    assert report.multivariate_drift and report.drifted_columns == []
    rescaled = embed(rng, topics, 1000, scale=1.1)  # a new encoder scales the vectors by 10 %
    r = embedding_drift(profile.extensions["vector:emb"], profile.summarize({"emb": rescaled}).sections["vector:emb"])
    assert r.drifted and r.norm_p_value < 1e-6


def test_a_stationary_stream_is_not_flagged(profile, topics):
    rng = np.random.default_rng(3)
    ext = profile.extensions["vector:emb"]
    flagged = sum(embedding_drift(ext, profile.summarize({"emb": embed(rng, topics, 1000)}).sections["vector:emb"]).drifted
                  for _ in range(60))
    print(f"\nstationary: {flagged} of 60 windows flagged (alpha 0.05)")
    assert flagged <= 0.05 * 60 + 2.33 * np.sqrt(0.05 * 0.95 * 60)  # the level, within sampling error


def test_memory_is_bounded_whatever_the_dimension(topics):
    rng = np.random.default_rng(4)
    sizes = []
    for dim in (64, 384, 1536):
        ext = VectorSketch.fit("v", rng.normal(size=(500, dim)), dims=16)
        sec = ext.summarize(Batch({"v": rng.normal(size=(300, dim))}, 300))
        sizes.append(len(json.dumps(sec.to_dict()["arrays"]["m2"])) // 100)
        assert sec.mean.shape == (16,) and sec.projected.m2.shape == (16, 16)
    assert sizes[0] == sizes[1] == sizes[2] or max(sizes) - min(sizes) <= 2


def test_lists_missing_and_invalid_rows_and_exact_merge(profile, topics):
    rng = np.random.default_rng(5)
    rows = embed(rng, topics, 60)
    batch = [{"emb": list(r), "length": 3.0} for r in rows[:50]]
    batch += [{"emb": None}, {"emb": [1.0, 2.0]}, {"emb": ["x"] * DIM}, {"length": 2.0}]
    s = profile.summarize(batch)
    sec = s.sections["vector:emb"]
    assert (sec.n, sec.missing, sec.invalid) == (50, 2, 2)
    assert s.rows == 54 and "emb" not in s.unknown_columns
    a = profile.summarize({"emb": rows[:25]}).sections["vector:emb"]
    b = profile.summarize({"emb": rows[25:]}).sections["vector:emb"]
    whole = profile.summarize({"emb": rows}).sections["vector:emb"]
    m = a.merge(b)
    np.testing.assert_allclose(m.mean, whole.mean, atol=1e-12)
    np.testing.assert_allclose(m.projected.m2, whole.projected.m2, rtol=1e-9)
    assert m.norm_counts.tolist() == whole.norm_counts.tolist()
    assert m.norm_mean == pytest.approx(whole.norm_mean) and m.norm_m2 == pytest.approx(whole.norm_m2)
    assert WindowSummary.from_bytes(s.to_bytes()).sections["vector:emb"] == sec


def test_a_plain_profile_counts_an_embedding_as_an_unknown_column():
    plain = Profile.fit({"x": np.arange(100.0)})
    s = plain.summarize({"x": np.arange(10.0), "emb": np.zeros((10, 4))})
    assert s.unknown_columns == {"emb": 10}
    with pytest.raises(ValueError, match="vectors=\\['emb'\\]"):
        Profile.fit({"x": np.arange(10.0), "emb": np.zeros((10, 4))})
