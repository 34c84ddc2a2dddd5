"""Replica outliers: a replica whose inputs, predictions or latency differ from its peers'.

Replicas of one deployment serve the same traffic through the same load balancer, so their
feature, prediction and latency distributions should agree. One that does not (stale
weights, a bad node, a wrong config) is found by comparing each replica's window summary
with the *pool* of the other replicas (leave-one-out, merged summaries), column by column,
with the drift tests of :mod:`raywatch.drift.methods` (the pool plays the reference). A
replica with fewer than ``min_rows`` rows takes no part: it is neither tested nor in the pools.

1. For every tested replica and column: a two-sample test, its p-value and effect size.
   Numerical columns: drift's ``ks`` (exact from the samples when both are held whole,
   binned otherwise), effect the Wasserstein distance in the pool's standard deviations.
   Categorical and boolean columns: Pearson's chi-square test of homogeneity on the two
   histograms (the pool is a sample as small as the replica, so drift's goodness-of-fit
   test against a reference taken as exact would flag too often), effect the total
   variation distance. Latency (from the replicas' latency
   sketches, when given) is a column too: a binned KS test on the sketches' shared
   logarithmic buckets, effect ``max |log(q_replica / q_pool)|`` over the median and p95.
2. The p-values of all replica × column tests of the round are corrected together
   (Bonferroni by default, :mod:`raywatch.drift.correction`). A column *differs* when its
   corrected p-value is below ``alpha`` **and** its effect reaches the floor: with large
   windows every replica differs from the pool by a statistically significant hair, and the
   floor keeps that from paging anyone.
3. The replica whose differing columns go furthest beyond their floors (the largest
   ``effect / floor``) is the outlier of the round. It leaves the pool, and the round is
   repeated with the others, while at least three replicas remain and fewer than half have
   been named (``max_outliers``, default ``(n − 1) // 2``): a healthy replica compared with
   a pool that holds the bad one also looks a little off (about half the bad one's effect
   with three replicas), and removing the worst first keeps it from being named.

False alarms: under identical replicas, the first round flags something with probability at
most ``alpha`` (default 0.01) (Bonferroni holds under any dependence between the leave-one-out tests; binned
KS is conservative), and later rounds need a first flag, so the chance of naming any replica
in a stationary window is at most ``alpha``; the test suite measures it by simulation. The
procedure assumes healthy replicas are the majority; with two replicas nothing can be named.
It works the same for model versions (pass one summary per version) or any peer groups.

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> rng = np.random.default_rng(0)
>>> profile = Profile.fit({"x": rng.normal(size=10_000)}, seed=0)
>>> windows = {r: profile.summarize({"x": rng.normal(1.0 if r == "r2" else 0.0, 1.0, 2000)}, seed=1)
...            for r in ("r1", "r2", "r3")}
>>> report = find_outlier_replicas(windows, profile)
>>> report.outliers, report.replicas["r2"].differing
(['r2'], ['x'])

References
----------
Dunn, O. J. (1961). Multiple comparisons among means. JASA 56(293) (Bonferroni).
Grubbs, F. E. (1969). Procedures for detecting outlying observations in samples.
Technometrics 11(1) (removing the most extreme point, then testing again).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from scipy.special import chdtrc

from raywatch.drift import statistics as st
from raywatch.drift.batched import against, binned_tests
from raywatch.drift.correction import adjust
from raywatch.drift.methods import METHODS, ColumnPair, default_method, effect_size
from raywatch.drift.report import _clean
from raywatch.stats.summary import WindowSummary

__all__ = ["PeerTest", "ReplicaVerdict", "ReplicaOutlierReport", "find_outlier_replicas", "LATENCY"]

LATENCY = "latency"  # the column name latency is tested under


@dataclass
class PeerTest:
    column: str
    method: str
    statistic: float
    p_value: float
    p_value_adjusted: float
    effect_size: float
    effect_floor: float
    differs: bool = False


@dataclass
class ReplicaVerdict:
    replica: str
    rows: int
    tested: bool
    outlier: bool = False
    round: Optional[int] = None  # the round that named it
    score: float = 0.0  # largest effect / floor among differing columns
    tests: Dict[str, PeerTest] = field(default_factory=dict)
    note: str = ""

    @property
    def differing(self) -> List[str]:
        return [c for c, t in self.tests.items() if t.differs]


@dataclass
class ReplicaOutlierReport:
    replicas: Dict[str, ReplicaVerdict]
    outliers: List[str]
    alpha: float
    correction: str
    rounds: int
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        for name, v in self.replicas.items():
            out["replicas"][name]["differing"] = v.differing
        return _clean(out)


def _latency_counts(sk: Any, lo: int, hi: int) -> np.ndarray:
    d = sk.to_dict()
    out = np.zeros(hi - lo + 2, dtype=np.int64)  # [zero bucket, keys lo..hi]
    out[0] = d["zero"]
    counts = np.asarray(d["counts"], dtype=np.int64)
    if counts.size:
        out[1 + d["offset"] - lo : 1 + d["offset"] - lo + counts.size] = counts
    return out


def _latency_test(rep: Any, pool: Any, min_ratio: float) -> Optional[PeerTest]:
    if not rep.count or not pool.count or rep.alpha != pool.alpha:
        return None
    ds = [s.to_dict() for s in (rep, pool)]
    ranges = [(d["offset"], d["offset"] + len(d["counts"]) - 1) for d in ds if d["counts"]]
    lo = min((r[0] for r in ranges), default=0)
    hi = max((r[1] for r in ranges), default=0)
    d, _, p = st.ks_binned(_latency_counts(pool, lo, hi), _latency_counts(rep, lo, hi))
    effect = 0.0
    for q in (0.5, 0.95):
        a, b = rep.quantile(q), pool.quantile(q)
        if a and b:
            effect = max(effect, abs(math.log(a / b)))
    return PeerTest(LATENCY, "ks", float(d), float(p), float(p), effect, math.log(min_ratio))


def _round(
    summaries: Mapping[str, WindowSummary], latency: Mapping[str, Any], members: Sequence[str], profile: Any,
    columns: Sequence[str], floors: Dict[str, float], alpha: float, correction: str, min_rows: int, min_latency_ratio: float,
) -> Dict[str, Dict[str, PeerTest]]:
    out: Dict[str, Dict[str, PeerTest]] = {}
    index = {name: i for i, name in enumerate(profile.specs)}
    for r in members:
        others = [o for o in members if o != r]
        pool, mine = WindowSummary.merge_all([summaries[o] for o in others]), summaries[r]
        tests: Dict[str, Optional[PeerTest]] = {}
        binned: List[str] = []  # numerical columns of binned KS: tested together (raywatch.drift.batched)
        for name in columns:
            spec = profile.specs[name]
            ref, cur = pool.column(name), mine.column(name)
            if cur.count < min_rows or ref.count < min_rows:
                continue
            pair = ColumnPair(ref=ref, cur=cur, edges=spec.edges, ref_complete=pool.sample_complete(name),
                              cur_complete=mine.sample_complete(name))
            if spec.kind == "numerical":
                method = default_method(spec.kind, ref)
                if method == "ks" and not pair.exact and spec.edges.size >= 1:
                    tests[name] = None  # filled in below, in the columns' order
                    binned.append(name)
                    continue
                res = METHODS[method].compute(pair)
                stat, p = float(res.statistic), float(res.p_value)
            else:
                method, (stat, p) = "chi2_homogeneity", _homogeneity(*pair.histograms())
            tests[name] = PeerTest(name, method, stat, p, p, float(effect_size(pair)), floors[spec.kind])
        if binned:  # the column-by-column figures to rounding, in a few numpy calls
            res = binned_tests(against(profile, pool), mine, np.array([index[n] for n in binned]))
            for name, d, p, w in zip(binned, res.d_low.tolist(), res.p_value.tolist(), res.effect.tolist()):
                tests[name] = PeerTest(name, "ks", d, p, p, w, floors["numerical"])
        if r in latency and all(o in latency for o in others):
            pooled = latency[others[0]].copy()
            for o in others[1:]:
                pooled.merge(latency[o])
            t = _latency_test(latency[r], pooled, min_latency_ratio)
            if t is not None:
                tests[LATENCY] = t
        out[r] = tests  # type: ignore[assignment]  (every None filled in above)
    flat = [t for tests in out.values() for t in tests.values()]
    for t, p in zip(flat, adjust([t.p_value for t in flat], correction) if flat else []):
        t.p_value_adjusted = float(p)
        t.differs = bool(p < alpha and t.effect_size >= t.effect_floor)
    return out


def _homogeneity(a: np.ndarray, b: np.ndarray) -> tuple:
    """Pearson's chi-square test that two histograms come from one distribution: both are
    samples, unlike drift's goodness-of-fit test against a reference taken as exact.
    ``(statistic, p-value)``: scipy's ``chi2_contingency(np.vstack((a, b)), correction=False)``
    (tested equal), without its generic n-way checks (~200 µs a call, ~12 µs here; a round
    makes one a replica and categorical column, at every evaluation). Bins empty in both
    are left out by the caller; a histogram with no values has nothing to test."""
    if a.size < 2:
        return 0.0, 1.0
    table = np.vstack((a, b)).astype(np.float64)
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    if not (rows > 0).all():
        return 0.0, 1.0
    expected = np.outer(rows, cols) / rows.sum()
    stat = float(np.sum(np.square(table - expected) / expected))
    return stat, float(chdtrc(a.size - 1, stat))


def _score(tests: Mapping[str, PeerTest]) -> float:
    return max((t.effect_size / t.effect_floor if t.effect_floor > 0 else t.effect_size
                for t in tests.values() if t.differs), default=0.0)


def find_outlier_replicas(
    summaries: Mapping[str, WindowSummary],
    profile: Any,
    *,
    latency: Optional[Mapping[str, Any]] = None,
    columns: Optional[Sequence[str]] = None,
    alpha: float = 0.01,
    correction: str = "bonferroni",
    min_effect_numerical: float = 0.1,
    min_effect_categorical: float = 0.1,
    min_latency_ratio: float = 1.25,
    min_rows: int = 100,
    max_outliers: Optional[int] = None,
) -> ReplicaOutlierReport:
    """Name the replicas whose distributions differ from their peers' (see the module docstring).

    Parameters
    ----------
    summaries
        Replica → its :class:`~raywatch.stats.summary.WindowSummary` for the window (one profile).
    profile
        The profile the summaries were made with (its bins and column kinds).
    latency
        Replica → its :class:`~raywatch.stats.sketch.LatencySketch` for the window (optional).
    columns
        The columns to compare (default: all of the profile's: features and predictions).
    alpha, correction
        Level and multiple-testing correction across all replica × column tests of a round
        (default 0.01: evaluated every window, a replica alert should be rare when all is well).
    min_effect_numerical, min_effect_categorical, min_latency_ratio
        Effect floors: normed Wasserstein distance, total variation distance, and the ratio of
        the replica's median or p95 latency to the pool's.
    min_rows
        Fewest values a replica needs in a column (and the pool too) for it to be tested.
    max_outliers
        At most this many replicas are named (default: fewer than half, ``(n − 1) // 2``).
    """
    if correction not in ("bonferroni", "bh", "none"):
        raise ValueError(f"correction must be bonferroni, bh or none, got {correction!r}")
    fps = {s.fingerprint for s in summaries.values()}
    if fps and fps != {profile.fingerprint}:
        raise ValueError("every replica's summary must be made with the given profile")
    cols = list(profile.columns if columns is None else columns)
    floors = {"numerical": min_effect_numerical, "categorical": min_effect_categorical, "boolean": min_effect_categorical}
    verdicts = {r: ReplicaVerdict(r, s.rows, s.rows >= min_rows) for r, s in summaries.items()}
    for v in verdicts.values():
        if not v.tested:
            v.note = f"{v.rows} rows, fewer than min_rows={min_rows}"
    # a replica with too few rows is neither judged nor a judge: in its peers' pools its few
    # rows would make them look off, and it cannot be named itself
    members = [r for r in summaries if verdicts[r].tested]
    cap = (len(members) - 1) // 2 if max_outliers is None else int(max_outliers)
    notes, rounds, last = [], 0, {}
    while len(members) >= 2:
        last = _round(summaries, latency or {}, members, profile, cols, floors,
                      alpha, correction, min_rows, min_latency_ratio)
        rounds += 1
        if len(members) < 3 or sum(v.outlier for v in verdicts.values()) >= cap:
            break
        scores = {r: _score(t) for r, t in last.items() if _score(t) > 0}
        if not scores:
            break
        worst = max(scores, key=lambda r: (scores[r], r))
        v = verdicts[worst]
        v.outlier, v.round, v.score, v.tests = True, rounds, scores[worst], last[worst]
        members.remove(worst)
    for r in members:
        if verdicts[r].tested:
            verdicts[r].tests, verdicts[r].score = last.get(r, {}), _score(last.get(r, {}))
    if len(summaries) < 3:
        notes.append(f"{len(summaries)} replica(s): at least three are needed to tell which one differs")
    elif len(members) + sum(v.outlier for v in verdicts.values()) < 3:
        notes.append(f"{sum(v.tested for v in verdicts.values())} replica(s) with min_rows={min_rows} rows: "
                     "at least three are needed to tell which one differs")
    elif len(members) < 3 and any(verdicts[r].differing for r in members):
        notes.append("the remaining replicas differ from each other, but fewer than three are left to tell which")
    return ReplicaOutlierReport(verdicts, sorted(r for r, v in verdicts.items() if v.outlier),
                                alpha, correction, rounds, notes)
