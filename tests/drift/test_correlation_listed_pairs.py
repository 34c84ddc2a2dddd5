"""The pairs a correlation result lists carry the test's own figures, whichever way they were made.

:func:`~raywatch.drift.correlation.correlation_change` computes Fisher z for every pair only when
some pair may be flagged; otherwise only for the pairs it lists. Both ways must give what the
test's formulas give for each listed pair (checked here against a plain, pair-by-pair reading of
the module docstring).
"""

import math

import numpy as np
import pytest
from scipy.special import ndtr

from raywatch.drift.correlation import correlation_change
from raywatch.stats.comoments import CorrelationExtension
from raywatch.stats.sections import Batch

NAMES = list("abcdefg")


def _columns(rng, n, rho):
    x = rng.normal(size=(n, len(NAMES)))
    x[:, 1] = rho * x[:, 0] + math.sqrt(1 - rho * rho) * x[:, 1]
    return x


def _expected(ext, section, names, m):
    """Per pair (a, b): (reference, current, change, p-value, adjusted p-value), pair by pair."""
    idx = {c: k for k, c in enumerate(ext.columns)}
    corr = section.correlation()
    root_n = math.sqrt(1.0 / (section.n - 3) + 1.0 / max(ext.reference_rows - 3, 1))
    out = {}
    for a, b in names:
        i, j = idx[a], idx[b]
        ref, cur = float(ext.reference_corr[i, j]), float(section.m2[i, j] / math.sqrt(section.m2[i, i] * section.m2[j, j]))
        kappa = ext.tau2[i, j] / max((1.0 - ref * ref) ** 2, 1e-12)
        clip = 1.0 - 1e-9
        z = abs(math.atanh(min(max(cur, -clip), clip)) - math.atanh(min(max(ref, -clip), clip))) / (math.sqrt(kappa) * root_n)
        p = 2.0 * float(ndtr(-z))
        out[(a, b)] = (ref, cur, cur - ref, p, min(p * m, 1.0))
        assert cur == pytest.approx(float(corr[i, j]), abs=1e-12)
    return out


@pytest.mark.parametrize("rho", [0.0, 0.6])  # 0.0: no change reaches min_change (z of the listed pairs only)
def test_listed_pairs_match_the_pairwise_formulas(rho):
    rng = np.random.default_rng(3)
    ext = CorrelationExtension.fit(NAMES, _columns(rng, 20_000, 0.0))
    window = _columns(rng, 4000, rho)
    section = ext.summarize(Batch({c: window[:, k] for k, c in enumerate(NAMES)}, len(window)))
    result = correlation_change(ext, section, top=8)
    m = len(NAMES) * (len(NAMES) - 1) // 2
    assert result.tested and result.drifted == (rho > 0) and len(result.pairs) == 8
    expected = _expected(ext, section, [(p.a, p.b) for p in result.pairs], m)
    for p in result.pairs:
        ref, cur, change, p_value, p_adj = expected[(p.a, p.b)]
        assert (p.reference, p.current, p.change) == pytest.approx((ref, cur, change), abs=1e-12)
        assert (p.p_value, p.p_value_adjusted) == pytest.approx((p_value, p_adj), rel=1e-9, abs=1e-300)
    changes = [abs(p.change) for p in result.pairs]
    assert changes == sorted(changes, reverse=True)
    assert result.max_change == pytest.approx(changes[0], abs=0)
    assert result.drifted_pairs == ([("a", "b")] if rho > 0 else [])


@pytest.mark.parametrize("correction", ["bonferroni", "bh"])
def test_the_listing_is_made_once_when_read_and_reads_as_a_dataclass(correction):
    """The listed pairs are made when first read: the same list every time, equal between two
    results of the same window, and ``to_dict`` gives what ``dataclasses.asdict`` gave."""
    from dataclasses import asdict

    rng = np.random.default_rng(5)
    ext = CorrelationExtension.fit(NAMES, _columns(rng, 20_000, 0.0))
    window = _columns(rng, 4000, 0.6)
    section = ext.summarize(Batch({c: window[:, k] for k, c in enumerate(NAMES)}, len(window)))
    first, second = (correlation_change(ext, section, top=5, correction=correction) for _ in range(2))
    assert first.pairs is first.pairs and len(first.pairs) == 5
    assert first == second and first != correlation_change(ext, section, top=4, correction=correction)
    d = second.to_dict()
    assert d["pairs"] == [asdict(p) for p in first.pairs] and d["drifted_pairs"] == [("a", "b")]
    assert list(d) == ["rows", "skipped", "tested", "drifted", "max_change", "alpha", "min_change", "drifted_pairs",
                       "pairs", "note"]
    assert "pairs=[PairChange(a='a', b='b'" in repr(first)


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_pair_columns_are_the_listed_pairs_fields_before_and_after_they_are_made(rho):
    from dataclasses import astuple

    rng = np.random.default_rng(6)
    ext = CorrelationExtension.fit(NAMES, _columns(rng, 20_000, 0.0))
    window = _columns(rng, 4000, rho)
    section = ext.summarize(Batch({c: window[:, k] for k, c in enumerate(NAMES)}, len(window)))
    fresh, made = correlation_change(ext, section, top=6), correlation_change(ext, section, top=6)
    expected = [astuple(p) for p in made.pairs]
    assert len(expected) == 6
    for count in (None, 3, 6, 50):
        for result in (fresh, made):  # fresh: its pairs not made; made: read from them
            columns = result.pair_columns(count)
            assert len(columns) == 8 and list(zip(*columns)) == expected[:count]
    assert fresh._pairs is None  # reading columns made no objects


def test_a_result_pickles_with_its_pairs_whether_made_or_not():
    import pickle

    rng = np.random.default_rng(7)
    ext = CorrelationExtension.fit(NAMES, _columns(rng, 20_000, 0.0))
    window = _columns(rng, 4000, 0.6)
    section = ext.summarize(Batch({c: window[:, k] for k, c in enumerate(NAMES)}, len(window)))
    fresh, made = correlation_change(ext, section, top=4), correlation_change(ext, section, top=4)
    made.pairs
    for result in (fresh, made):
        back = pickle.loads(pickle.dumps(result))
        assert back == made and back.pairs == made.pairs and back.drifted_pairs == [("a", "b")]
