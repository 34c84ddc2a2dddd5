"""Data quality of a window, each share compared with the reference's own rate.

The counters come from the same vectorized pass that builds the window summary
(:mod:`raywatch.stats.summary`); this module turns them into shares, puts the reference's
rate beside each, and flags a share as an *issue* when it exceeds the reference rate by at
least ``tolerance`` (absolute) and a one-sided binomial test at level ``alpha`` says the
excess is not chance. Reference rates:

* missing, non-finite, wrong type — the reference's own shares;
* out of range — ``2 / (n + 1)``: the chance that one more value from the reference's
  distribution falls below the minimum or above the maximum of ``n`` reference values;
* unseen category — the Good–Turing estimate ``(labels seen once) / n``, the probability
  that the next value is a label the reference does not hold.

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> profile = Profile.fit({"x": np.arange(1000.0)})
>>> q = assess(profile, profile.summarize({"x": [1.0, None, None, 5000.0] * 25}))["x"]
>>> q.missing_share, q.out_of_range_share, q.issues
(0.5, 0.5, ['missing_share', 'out_of_range_share'])
"""

from __future__ import annotations

import logging
from typing import Dict

import numpy as np
from scipy.stats import binom

from raywatch import series
from raywatch.drift.batched import shares, plan_for
from raywatch.drift.report import ColumnQuality
from raywatch.stats.profile import Profile
from raywatch.stats.summary import INT_FIELDS, WindowSummary

__all__ = ["assess"]

log = logging.getLogger("raywatch.drift.quality")


_FIELDS = (series.MISSING_SHARE.name, "nonfinite_share", "wrong_type_share", series.OUT_OF_RANGE_SHARE.name,
           series.UNSEEN_CATEGORY_SHARE.name)
_I = {name: i for i, name in enumerate(INT_FIELDS)}


def _flag(k: int, n: int, rate: float, alpha: float) -> bool:
    """The binomial test of a share already above its rate by the tolerance."""
    if rate <= 0.0:
        return True
    if rate >= 1.0:
        return False
    return float(binom.sf(k - 1, n, rate)) < alpha


def assess(
    profile: Profile, summary: WindowSummary, tolerance: float = 0.01, alpha: float = 0.001
) -> Dict[str, ColumnQuality]:
    """Quality shares and issues for every column of ``profile`` in ``summary`` (the shares of
    all columns in a few array operations; the binomial test only where a share exceeds its
    reference rate by the tolerance)."""
    specs = list(profile.specs.values())
    cur = summary.ints.astype(np.float64)
    rows, count = cur[:, _I["rows"]], cur[:, _I["count"]]
    # per check (the _FIELDS order): counts, denominators, reference rates (made once per profile)
    k = np.stack([cur[:, _I["missing"]], cur[:, _I["nonfinite"]], cur[:, _I["wrong_type"]],
                  cur[:, _I["out_of_range"]], cur[:, _I["unseen"]]])
    n = np.stack([rows, rows, rows, count, count])
    rate = plan_for(profile).quality_rates
    share = shares(k, n)
    candidates = (n > 0) & (k > 0) & (share - rate >= tolerance)
    issue = np.zeros(k.shape, dtype=bool)
    for f, i in zip(*np.nonzero(candidates)):
        issue[f, i] = _flag(int(k[f, i]), int(n[f, i]), float(rate[f, i]), alpha)
    share_l, rate_l, issue_l = share.T.tolist(), rate.T.tolist(), issue.T.tolist()
    out: Dict[str, ColumnQuality] = {}
    for i, spec in enumerate(specs):
        values = {}
        for f, key in enumerate(_FIELDS):
            values[key] = share_l[i][f]
            values[key + "_reference"] = rate_l[i][f]
        issues = [key for f, key in enumerate(_FIELDS) if issue_l[i][f]]
        if issues:
            log.debug("column %r quality issues: %s", spec.name, ", ".join(issues))
        out[spec.name] = ColumnQuality(name=spec.name, kind=spec.kind, rows=int(rows[i]), issues=issues, **values)
    return out
