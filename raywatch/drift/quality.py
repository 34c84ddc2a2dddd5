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

from scipy.stats import binom

from raywatch import series
from raywatch.drift.report import ColumnQuality
from raywatch.stats.profile import Profile
from raywatch.stats.summary import WindowSummary

__all__ = ["assess"]

log = logging.getLogger("raywatch.drift.quality")


def _share(k: int, n: int) -> float:
    return k / n if n > 0 else 0.0


def _flag(k: int, n: int, rate: float, tolerance: float, alpha: float) -> bool:
    if n <= 0 or k <= 0 or k / n - rate < tolerance:
        return False
    if rate <= 0.0:
        return True
    if rate >= 1.0:
        return False
    return float(binom.sf(k - 1, n, rate)) < alpha


def assess(
    profile: Profile, summary: WindowSummary, tolerance: float = 0.01, alpha: float = 0.001
) -> Dict[str, ColumnQuality]:
    """Quality shares and issues for every column of ``profile`` in ``summary``."""
    out: Dict[str, ColumnQuality] = {}
    for name, spec in profile.specs.items():
        ref = profile.reference.column(name)
        cur = summary.column(name)
        oor_rate = 2.0 / (ref.count + 1) if spec.kind == "numerical" else 0.0
        unseen_rate = _share(spec.singletons, ref.count) if spec.kind == "categorical" else 0.0
        checks = {
            # field: (count, denominator, reference rate)
            series.MISSING_SHARE.name: (cur.missing, cur.rows, _share(ref.missing, ref.rows)),
            "nonfinite_share": (cur.nonfinite, cur.rows, _share(ref.nonfinite, ref.rows)),
            "wrong_type_share": (cur.wrong_type, cur.rows, _share(ref.wrong_type, ref.rows)),
            series.OUT_OF_RANGE_SHARE.name: (cur.out_of_range, cur.count, oor_rate),
            series.UNSEEN_CATEGORY_SHARE.name: (cur.unseen, cur.count, unseen_rate),
        }
        values = {}
        issues = []
        for key, (k, n, rate) in checks.items():
            values[key] = _share(k, n)
            values[key + "_reference"] = rate
            if _flag(k, n, rate, tolerance, alpha):
                issues.append(key)
        if issues:
            log.debug("column %r quality issues: %s", name, ", ".join(issues))
        out[name] = ColumnQuality(name=name, kind=spec.kind, rows=cur.rows, issues=issues, **values)
    return out
