"""False-alarm rates of the multivariate tests, measured on many stationary windows (slow).

The figures are printed (run with ``-s``) and quoted in the modules' docstrings:
``raywatch/drift/correlation.py``, ``reconstruction.py`` and ``embedding.py``.
"""

import numpy as np
import pytest

from raywatch.drift.correlation import correlation_change
from raywatch.drift.embedding import embedding_drift
from raywatch.drift.reconstruction import reconstruction_drift
from raywatch.stats.comoments import CorrelationExtension
from raywatch.stats.reconstruction import PCAExtension
from raywatch.stats.sections import Batch
from raywatch.stats.vectors import VectorSketch


def within_level(alarms: int, windows: int, level: float) -> bool:
    return alarms <= level * windows + 2.33 * np.sqrt(level * (1 - level) * windows)


@pytest.mark.slow
def test_correlation_level_over_3000_windows():
    rng = np.random.default_rng(11)
    names = list("abcdef")
    ext = CorrelationExtension.fit(names, rng.normal(size=(50_000, 6)))
    alarms = sum(correlation_change(ext, ext.summarize(Batch(dict(zip(names, rng.normal(size=(6, 300)))), 300))).drifted
                 for _ in range(3000))
    print(f"\ncorrelation, 300-row normal windows: {alarms} of 3000 flagged ({alarms / 30:.1f} %, alpha 5 %)")
    assert within_level(alarms, 3000, 0.05)


@pytest.mark.slow
@pytest.mark.parametrize("reference_rows", [5000, 20_000, 100_000])
def test_reconstruction_level_for_references_of_every_size(reference_rows):
    rng = np.random.default_rng(reference_rows)
    d = 20
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    names = [f"c{i}" for i in range(d)]
    ext = PCAExtension.fit(names, rng.normal(size=(reference_rows, d)) @ mix)
    alarms = 0
    for _ in range(300):
        x = rng.normal(size=(5000, d)) @ mix
        alarms += reconstruction_drift(ext, ext.summarize(Batch(dict(zip(names, x.T)), 5000))).drifted
    print(f"\nPCA, reference {reference_rows} rows: {alarms} of 300 windows flagged")
    assert alarms <= 6  # 3-sigma band: 0.3 % expected, within sampling error


@pytest.mark.slow
def test_embedding_level_over_200_windows():
    rng = np.random.default_rng(12)
    dim = 1536
    topics = rng.normal(size=(5, dim))
    topics *= 8.0 / np.linalg.norm(topics, axis=1, keepdims=True)
    scale = np.linspace(0.05, 0.3, dim)

    def embed(n):
        return topics[rng.choice(5, n, p=[0.4, 0.3, 0.15, 0.1, 0.05])] + rng.normal(size=(n, dim)) * scale

    ext = VectorSketch.fit("emb", embed(8000))
    alarms = sum(embedding_drift(ext, ext.summarize(Batch({"emb": embed(1000)}, 1000))).drifted for _ in range(200))
    print(f"\nembedding, 1,536 dims, 1,000-row windows: {alarms} of 200 flagged (alpha 5 %)")
    assert within_level(alarms, 200, 0.05)
