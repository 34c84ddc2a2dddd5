"""PCA reconstruction drift: a known multivariate shift is caught, stationary data is not."""

import numpy as np
import pytest

from raywatch.drift import detect_drift
from raywatch.drift.reconstruction import reconstruction_drift
from raywatch.stats import Profile
from raywatch.stats.reconstruction import PCAExtension, ReconstructionErrors
from raywatch.stats.sections import Batch

D = 8


def draw(rng, n, loading=0.9, mix=None):
    """Eight columns driven by two factors; each column's variance is 1 whatever ``loading``,
    so a weaker factor structure changes no marginal, only how the columns move together."""
    f = rng.normal(size=(n, 2))
    w = np.array([[1, 0]] * 4 + [[0, 1]] * 4, dtype=float)
    x = loading * f @ w.T + np.sqrt(1 - loading**2) * rng.normal(size=(n, D))
    return {f"c{i}": x[:, i] for i in range(D)}


@pytest.fixture(scope="module")
def profile():
    return Profile.fit(draw(np.random.default_rng(1), 20_000), seed=0, pca=True)


def test_a_known_multivariate_shift_is_caught(profile):
    rng = np.random.default_rng(2)
    report = detect_drift(profile, draw(rng, 5000, loading=0.7))
    r = report.extensions["pca"]
    assert report.drifted_columns == []  # marginals unchanged
    assert r.tested and r.drifted and r.mean_error > r.upper
    assert r.components == 2 and r.explained_variance >= 0.65
    assert report.multivariate_drift


def test_stationary_windows_are_not_flagged(profile):
    rng = np.random.default_rng(3)
    ext = profile.extensions["pca"]
    flagged = sum(reconstruction_drift(ext, profile.summarize(draw(rng, 2000)).sections["pca"]).drifted
                  for _ in range(150))
    print(f"\nstationary: {flagged} of 150 windows flagged")
    assert flagged <= 3  # 3-sigma band: 0.3 % expected


def test_errors_equal_scikit_learns_pca_reconstruction():
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(4)
    x = np.column_stack(list(draw(rng, 3000).values()))
    ext = PCAExtension.fit([f"c{i}" for i in range(D)], x, variance=0.65)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    pca = decomposition.PCA(n_components=ext.components.shape[0]).fit(z)
    theirs = np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1)
    s = ext.summarize(Batch({f"c{i}": x[:, i] for i in range(D)}, 3000))
    assert s.mean == pytest.approx(theirs.mean(), rel=1e-9)


def test_sums_merge_and_missing_values_are_imputed_and_counted(profile):
    rng = np.random.default_rng(5)
    w = draw(rng, 1000)
    ext = profile.extensions["pca"]
    a = ext.summarize(Batch({k: v[:400] for k, v in w.items()}, 400))
    b = ext.summarize(Batch({k: v[400:] for k, v in w.items()}, 600))
    whole = ext.summarize(Batch(w, 1000))
    m = a.merge(b)
    assert m.n == whole.n and m.total == pytest.approx(whole.total) and m.total_sq == pytest.approx(whole.total_sq)
    w["c0"] = np.where(np.arange(1000) < 100, np.nan, w["c0"])
    del w["c7"]
    s = ext.summarize(Batch(w, 1000))
    assert s.imputed == 100 + 1000 and s.n == 1000
    small = reconstruction_drift(ext, ReconstructionErrors(10, 5.0, 3.0))
    assert not small.tested and "min_rows" in small.note
