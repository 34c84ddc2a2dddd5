"""Fairness across groups: per-group rates from mergeable counts, and the disparities between groups.

A :class:`GroupRates` accumulator holds one group's counts in one window. The replica
counts predictions (:meth:`GroupRates.add_predictions`: selection rate needs no ground
truth); the stats actor counts the rows whose feedback arrived (:meth:`GroupRates.add_outcomes`:
the confusion counts and the calibration sums). Counts merge exactly across replicas and
windows. :func:`assess_fairness` turns one accumulator per group into a
:class:`FairnessReport`:

===============================  ===========================================================
per group                        selection rate ``P(ŷ = fav)``, true positive rate
                                 ``P(ŷ = fav | y = fav)``, false positive rate
                                 ``P(ŷ = fav | y ≠ fav)``, precision ``P(y = fav | ŷ = fav)``,
                                 calibration: mean score against observed outcome rate, their
                                 gap ``mean(score − y)`` and the binned calibration error (ECE,
                                 10 equal-width score bins); disparate impact: selection rate
                                 over the reference group's
across groups                    demographic parity difference ``max − min`` of selection rates
                                 and ratio ``min / max``; disparate impact (the smallest ratio
                                 to the reference; the four-fifths rule flags < 0.8);
                                 equalized-odds difference (the larger of the TPR and FPR
                                 spreads); equal-opportunity difference (the TPR spread)
===============================  ===========================================================

The values equal fairlearn's (``MetricFrame(...).by_group``,
``demographic_parity_difference``, ``demographic_parity_ratio``,
``equalized_odds_difference``, ``equal_opportunity_difference``, with ``pos_label`` =
the favourable outcome) on the same rows, when every group is tested. Two deliberate
differences: a rate whose denominator is empty is undefined here (fairlearn reports 0), and a
group below ``min_group_size`` for a figure is *untested* for it (``tested=False``, ``note``
says why) and left out of the cross-group figures; with fewer than two tested groups a
cross-group figure is untested.

Parameters of :func:`assess_fairness`
-------------------------------------
reference
    ``"best"`` (default): the best-off group, the one with the highest selection rate; or a
    group's label (hashed with the same key if the attribute is hashed).
min_group_size
    The fewest rows behind a rate (its denominator) for it to be tested (default 30).
confidence
    Interval level (default 0.95). Rates: Wilson. Per-group disparate impact: MOVER-R ratio,
    Bonferroni over the groups compared. Spreads and the parity ratio: simultaneous
    pairwise intervals (:mod:`raywatch.drift.intervals`), valid whichever groups are the
    extremes. Calibration gap: normal interval of the mean of ``score − y``.
four_fifths
    The disparate-impact threshold (default 0.8, the US EEOC's four-fifths rule).

>>> a, b = GroupRates(favourable=1), GroupRates(favourable=1)
>>> a.add_outcomes([1, 1, 0, 0, 1, 0], [1, 1, 0, 1, 1, 0])
>>> b.add_outcomes([1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 0])
>>> for g, y in ((a, [1, 1, 0, 1, 1, 0]), (b, [1, 0, 0, 0, 0, 0])): g.add_predictions(y)
>>> r = assess_fairness({"a": a, "b": b}, min_group_size=1)
>>> r.reference, round(r.demographic_parity_ratio.value, 4), r.adverse_impact
('a', 0.25, ['b'])
>>> round(r.equalized_odds_difference.value, 4), round(r.groups["b"].true_positive_rate.value, 4)
(0.6667, 0.3333)

References
----------
Hardt, M., Price, E., Srebro, N. (2016). Equality of opportunity in supervised learning.
NeurIPS 2016. Feldman, M. et al. (2015). Certifying and removing disparate impact. KDD 2015.
Bird, S. et al. (2020). Fairlearn: a toolkit for assessing and improving fairness in AI.
Microsoft Tech Report MSR-TR-2020-32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Hashable, List, Mapping, Optional, Tuple

import numpy as np

from raywatch import series
from raywatch.drift import intervals as ci
from raywatch.drift.performance import _label_key
from raywatch.drift.report import _clean

__all__ = ["GroupRates", "Estimate", "GroupFairness", "FairnessReport", "assess_fairness"]

OTHER = "__other__"  # raywatch.stats.labels.OTHER: a mixture of groups, never assessed
_COUNTS = ("predictions", "selected", "tp", "fp", "fn", "tn", "skipped")
_SUMS = ("cal_n", "cal_score", "cal_outcome", "cal_squares")
CAL_BINS = 10


def _favourable(values: Any, favourable: Hashable) -> Tuple[np.ndarray, np.ndarray]:
    """``(is_favourable, is_known)`` per value; None/NaN are unknown."""
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind in "biuf" and isinstance(favourable, (int, float)):
        known = ~np.isnan(arr) if arr.dtype.kind == "f" else np.ones(arr.shape, bool)
        return (arr == favourable) & known, known
    keys = [None if v is None or (isinstance(v, float) and v != v) else _label_key(v) for v in arr.tolist()]
    return np.array([k == favourable for k in keys], bool), np.array([k is not None for k in keys], bool)


class GroupRates:
    """Mergeable counts of one group's predictions, outcomes and scores.

    Parameters
    ----------
    favourable
        The favourable outcome (``1``, ``True`` and ``1.0`` are one label).
    """

    __slots__ = ("favourable", "counts", "sums", "bins")

    def __init__(self, favourable: Hashable = 1):
        self.favourable = _label_key(favourable)
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.sums = dict.fromkeys(_SUMS, 0.0)
        self.bins = np.zeros((3, CAL_BINS))  # per score bin: rows, sum of scores, sum of outcomes

    def add_predictions(self, y_pred: Any) -> None:
        """Count served predictions (the selection rate's rows); None is skipped."""
        fav, known = _favourable(y_pred, self.favourable)
        self.counts["predictions"] += int(known.sum())
        self.counts["selected"] += int(fav.sum())
        self.counts["skipped"] += int((~known).sum())

    def add_outcomes(self, y_true: Any, y_pred: Any, score: Any = None) -> None:
        """Count rows with ground truth: confusion counts, and with ``score`` (the predicted
        probability of the favourable outcome) the calibration sums. Rows with a missing
        label are skipped; a missing or non-finite score leaves the row out of calibration."""
        t, tk = _favourable(y_true, self.favourable)
        p, pk = _favourable(y_pred, self.favourable)
        if t.size != p.size:
            raise ValueError(f"y_true has {t.size} values, y_pred {p.size}")
        ok = tk & pk
        self.counts["skipped"] += int((~ok).sum())
        t, p = t[ok], p[ok]
        for name, v in (("tp", t & p), ("fp", ~t & p), ("fn", t & ~p), ("tn", ~t & ~p)):
            self.counts[name] += int(v.sum())
        if score is None:
            return
        s = np.asarray(score, dtype=np.float64).reshape(-1)
        if s.size != ok.size:
            raise ValueError(f"score has {s.size} values, y_true {ok.size}")
        s = s[ok]
        good = np.isfinite(s)
        s, y = s[good], t[good].astype(np.float64)
        self.sums["cal_n"] += float(s.size)
        self.sums["cal_score"] += float(s.sum())
        self.sums["cal_outcome"] += float(y.sum())
        self.sums["cal_squares"] += float(np.square(s - y).sum())
        b = np.clip((s * CAL_BINS).astype(np.int64), 0, CAL_BINS - 1)
        for row, w in enumerate((None, s, y)):
            self.bins[row] += np.bincount(b, weights=w, minlength=CAL_BINS)

    def merge(self, other: "GroupRates") -> "GroupRates":
        """A new accumulator of both (exact)."""
        if not isinstance(other, GroupRates) or other.favourable != self.favourable:
            raise ValueError("can only merge GroupRates with the same favourable outcome")
        out = GroupRates(self.favourable)
        out.counts = {k: self.counts[k] + other.counts[k] for k in _COUNTS}
        out.sums = {k: self.sums[k] + other.sums[k] for k in _SUMS}
        out.bins = self.bins + other.bins
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"favourable": self.favourable, **self.counts, **self.sums, "bins": self.bins.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GroupRates":
        out = cls(d["favourable"])
        out.counts = {k: int(d[k]) for k in _COUNTS}
        out.sums = {k: float(d[k]) for k in _SUMS}
        bins = np.asarray(d["bins"], dtype=np.float64)
        if bins.shape != (3, CAL_BINS) or any(v < 0 for v in out.counts.values()) or (bins[0] < 0).any():
            raise ValueError("damaged group rates: negative counts or wrong calibration bins")
        out.bins = bins
        return out

    def __repr__(self) -> str:
        c = self.counts
        return f"GroupRates(favourable={self.favourable!r}, predictions={c['predictions']}, labelled={c['tp'] + c['fp'] + c['fn'] + c['tn']})"


@dataclass
class Estimate:
    """One figure with its interval; ``tested`` is False below the minimum group size."""

    value: Optional[float]
    low: Optional[float] = None
    high: Optional[float] = None
    n: int = 0
    tested: bool = False
    note: str = ""


@dataclass
class GroupFairness:
    group: str
    selection_rate: Estimate
    true_positive_rate: Estimate
    false_positive_rate: Estimate
    precision: Estimate
    calibration_gap: Estimate  # mean(score − outcome)
    mean_score: Optional[float]
    observed_rate: Optional[float]
    calibration_error: Optional[float]  # ECE over 10 score bins
    disparate_impact: Estimate  # selection rate / the reference's
    below_four_fifths: bool = False


@dataclass
class FairnessReport:
    attribute: str
    favourable: Any
    reference: Optional[str]
    groups: Dict[str, GroupFairness]
    demographic_parity_difference: Estimate
    demographic_parity_ratio: Estimate
    disparate_impact: Estimate
    equalized_odds_difference: Estimate
    equal_opportunity_difference: Estimate
    adverse_impact: List[str] = field(default_factory=list)
    confidence: float = 0.95
    min_group_size: int = 30
    four_fifths: float = 0.8
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able (non-finite numbers become None)."""
        return _clean(asdict(self))


def _rate(x: int, n: int, min_n: int, conf: float, what: str) -> Estimate:
    if n == 0:
        return Estimate(None, n=0, note=f"no rows for the {what}")
    lo, hi = ci.wilson(x, n, conf)
    ok = n >= min_n
    return Estimate(x / n, lo, hi, n, ok, "" if ok else f"{n} rows, fewer than min_group_size={min_n}")


def _pairs_of(groups: Dict[str, GroupRates], num: str, den: Tuple[str, ...], min_n: int) -> Dict[str, Tuple[int, int]]:
    out = {}
    for g, r in groups.items():
        n = sum(r.counts[k] for k in den)
        if n and n >= min_n:
            out[g] = (r.counts[num], n)
    return out


def _spread(xn: Dict[str, Tuple[int, int]], conf: float, tests: int = 1) -> Estimate:
    if len(xn) < 2:
        return Estimate(None, note=f"{len(xn)} tested group(s): nothing to compare")
    rates = [x / n for x, n in xn.values()]
    lo, hi = ci.spread(list(xn.values()), conf, tests)
    return Estimate(max(rates) - min(rates), lo, hi, sum(n for _, n in xn.values()), True)


def assess_fairness(
    groups: Mapping[str, GroupRates],
    *,
    reference: str = "best",
    min_group_size: int = 30,
    confidence: float = 0.95,
    four_fifths: float = 0.8,
    attribute: str = "",
) -> FairnessReport:
    """Per-group rates and cross-group disparities (see the module docstring)."""
    notes = []
    if OTHER in groups:
        notes.append(f"{OTHER} mixes groups outside the top K: not assessed")
    gs = {g: r for g, r in groups.items() if g != OTHER}
    favs = {r.favourable for r in gs.values()}
    if len(favs) > 1:
        raise ValueError(f"groups disagree on the favourable outcome: {sorted(map(str, favs))}")
    m, conf = min_group_size, confidence
    sel = _pairs_of(gs, "selected", ("predictions",), m)
    tpr = _pairs_of(gs, "tp", ("tp", "fn"), m)
    fpr = _pairs_of(gs, "fp", ("fp", "tn"), m)
    if reference == "best":
        ref = max(sel, key=lambda g: (sel[g][0] / sel[g][1], g)) if sel else None
    else:
        ref = reference
        if ref not in sel:
            notes.append(f"reference group {ref!r} is absent or untested: no disparate impact")
    ref_ok = ref in sel and sel[ref][0] > 0
    di_level = 1.0 - (1.0 - conf) / max(1, len(sel) - 1)
    out: Dict[str, GroupFairness] = {}
    for g, r in gs.items():
        c, s = r.counts, r.sums
        di = Estimate(None, note="no reference selection rate")
        if ref_ok and g in sel:
            (x, n), (xr, nr) = sel[g], sel[ref]
            lo, hi = ci.ratio(x, n, xr, nr, di_level)
            di = Estimate((x / n) / (xr / nr), lo, hi, n, True)
        elif ref_ok:
            di = Estimate(None, note="group untested for the selection rate")
        cal_n = int(s["cal_n"])
        gap = ci.mean_interval(cal_n, s["cal_score"] - s["cal_outcome"], s["cal_squares"], conf)
        calib = Estimate(
            (s["cal_score"] - s["cal_outcome"]) / cal_n if cal_n else None,
            *(gap or (None, None)), cal_n, cal_n >= max(m, 2),
            "" if cal_n >= max(m, 2) else f"{cal_n} scored rows with feedback, fewer than min_group_size={m}",
        )
        nb = r.bins[0]
        ece = float(np.sum(np.abs(r.bins[1] - r.bins[2])) / cal_n) if cal_n else None  # Σ n_b/n |s̄_b − ȳ_b|
        out[g] = GroupFairness(
            group=g,
            selection_rate=_rate(c["selected"], c["predictions"], m, conf, "selection rate"),
            true_positive_rate=_rate(c["tp"], c["tp"] + c["fn"], m, conf, "true positive rate"),
            false_positive_rate=_rate(c["fp"], c["fp"] + c["tn"], m, conf, "false positive rate"),
            precision=_rate(c["tp"], c["tp"] + c["fp"], m, conf, series.PRECISION.name),
            calibration_gap=calib,
            mean_score=s["cal_score"] / cal_n if cal_n else None,
            observed_rate=s["cal_outcome"] / cal_n if cal_n else None,
            calibration_error=ece if nb.sum() else None,
            disparate_impact=di,
            below_four_fifths=bool(di.tested and di.value is not None and di.value < four_fifths),
        )
    dpr = Estimate(None, note=f"{len(sel)} tested group(s): nothing to compare")
    if len(sel) >= 2:
        rates = [x / n for x, n in sel.values()]
        lo, hi = ci.min_ratio(list(sel.values()), conf)
        value = min(rates) / max(rates) if max(rates) > 0 else None
        dpr = Estimate(value, lo, hi, sum(n for _, n in sel.values()), value is not None,
                       "" if value is not None else "no group was selected")
    di_all = Estimate(None, note="no disparate impact without a tested reference")
    others = [out[g].disparate_impact for g in sel if g != ref]
    if reference == "best":
        di_all = dpr
    elif ref_ok and others:
        worst = min(others, key=lambda e: e.value)
        di_all = Estimate(worst.value, min(e.low for e in others), min(e.high for e in others),
                          sum(e.n for e in others), True)
    eo_t, eo_f = _spread(tpr, conf, 2), _spread(fpr, conf, 2)
    if eo_t.tested and eo_f.tested:
        eo = Estimate(max(eo_t.value, eo_f.value), max(eo_t.low, eo_f.low), max(eo_t.high, eo_f.high),
                      eo_t.n + eo_f.n, True)
    else:
        eo = Estimate(None, note="true and false positive rates need two tested groups each")
    return FairnessReport(
        attribute=attribute,
        favourable=next(iter(favs)) if favs else None,
        reference=ref,
        groups=out,
        demographic_parity_difference=_spread(sel, conf),
        demographic_parity_ratio=dpr,
        disparate_impact=di_all,
        equalized_odds_difference=eo,
        equal_opportunity_difference=_spread(tpr, conf),
        adverse_impact=sorted(g for g, f in out.items() if f.below_four_fifths),
        confidence=conf,
        min_group_size=m,
        four_fifths=four_fifths,
        notes=notes,
    )
