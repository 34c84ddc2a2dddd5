"""Multiple-testing correction of p-values across the columns of one window.

Testing 20 columns at α = 0.05 each raises a false alarm in about 64 % of stationary
windows. raywatch therefore adjusts the p-values of the tested columns before comparing them
with α:

* ``"bonferroni"`` (the default) — ``min(1, m·p)``. Controls the family-wise error rate: the
  chance that *any* column of a stationary window is flagged stays at most α, whatever the
  dependence between columns. That is the promise an alert needs: one false page per ~20
  windows at α = 0.05 at worst, in practice fewer (binned KS is conservative, and the
  effect-size floor filters further).
* ``"bh"`` — Benjamini–Hochberg step-up adjusted p-values. Controls the false discovery
  rate (the expected share of flagged columns that did not drift); more power when many
  columns drift at once, but no family-wise guarantee when some do.
* ``"none"`` — raw p-values.

References
----------
Benjamini, Y., Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
powerful approach to multiple testing. JRSS B 57(1).

>>> bonferroni([0.01, 0.04, 0.5]).tolist()
[0.03, 0.12, 1.0]
>>> benjamini_hochberg([0.01, 0.04, 0.5]).round(4).tolist()
[0.03, 0.06, 0.5]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["CORRECTIONS", "adjust", "bonferroni", "benjamini_hochberg"]

CORRECTIONS = ("bonferroni", "bh", "none")


def bonferroni(p_values: Sequence[float]) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64)
    return np.minimum(p * p.size, 1.0)


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """BH adjusted p-values (equal to ``scipy.stats.false_discovery_control(p)``)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return out


def adjust(p_values: Sequence[float], method: str = "bonferroni") -> np.ndarray:
    """Adjusted p-values by ``method`` (one of :data:`CORRECTIONS`)."""
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=np.float64).copy()
    raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {method!r}")
