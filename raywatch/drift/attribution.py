"""Feature attribution of a prediction shift: which drifted feature moved the predictions.

When the prediction's distribution drifts, several features usually drift with it. The
sidecar sees inputs and outputs, not the model's internals (no SHAP), so it asks of each
feature: *how far would the mean prediction have moved if only this feature's distribution
had changed, and the model's average output within each of its bins had stayed as in the
reference?*

Method (a shift-share, or Oaxaca–Blinder, decomposition per feature)
--------------------------------------------------------------------
For a feature with bins ``b`` (the profile's reference bins, plus one cell for missing or
invalid values), let ``p_b``, ``q_b`` be the reference's and the window's share of rows in
bin ``b``, and ``m_b``, ``w_b`` the mean prediction in that bin. The mean prediction moves by

    Δ = Σ_b q_b·w_b − Σ_b p_b·m_b = Σ_b (q_b − p_b)·m_b  +  Σ_b q_b·(w_b − m_b)
                                     └── explained ──┘     └── conditional ──┘

The *explained* part is the shift the feature's distribution change accounts for through
the reference's response to it; the *conditional* part is what changed in the prediction
at a given value of the feature (other features' drift, or a concept/model change). A bin
the reference never saw takes the reference's overall mean (no information). Features are
ranked by ``|explained|``; ``share = explained / Δ``. The standard error of ``explained``
comes from the multinomial sampling of both histograms and the sampling error of the
reference's bin means (from the sums of squares); ``significant`` means ``|z|``
beyond the Bonferroni-corrected normal quantile over the ranked features, and a feature
*explains* the shift when it is significant and ``|share| ≥ min_share`` (0.1 by default).

What it is not: a feature correlated with a feature the model uses inherits part of that
feature's credit (the decomposition is marginal, per feature); interactions land in the
conditional part; the figures for different features do not sum to Δ. The test in
``tests/drift/test_attribution.py`` shows that with two independent drifted features only the
one the model uses is credited.

Accumulation: :class:`PredictionByBin` keeps, per feature and bin, the rows and the sum and
sum of squares of the prediction. It merges exactly (counts; sums to rounding), so
replicas update it per flush and the stats actor merges it per window; the reference's is
the same table over the reference data.

>>> import numpy as np
>>> from raywatch.stats.profile import Profile
>>> rng = np.random.default_rng(0)
>>> ref = {"x1": rng.normal(size=20_000), "x2": rng.normal(size=20_000)}
>>> ref["prediction"] = 2.0 * ref["x1"]
>>> profile = Profile.fit(ref, bins=20, seed=0)
>>> reference = PredictionByBin(profile)
>>> reference.update(ref)
>>> cur = {"x1": rng.normal(1.0, 1.0, 5000), "x2": rng.normal(1.0, 1.0, 5000)}
>>> window = PredictionByBin(profile)
>>> window.update({**cur, "prediction": 2.0 * cur["x1"]})
>>> result = attribute_shift(reference, window)
>>> [f.feature for f in result.features], round(result.shift, 1), round(result.features[0].share, 1)
(['x1', 'x2'], 2.0, 1.0)
>>> abs(result.features[1].share) < 0.05, result.explaining
(True, ['x1'])

References
----------
Oaxaca, R. (1973). Male–female wage differentials in urban labor markets. International
Economic Review 14(3); Blinder, A. S. (1973). Wage discrimination: reduced form and
structural estimates. Journal of Human Resources 8(4).
Budhathoki, K., Janzing, D., Blöbaum, P., Ng, H. (2021). Why did the distribution change?
AISTATS 2021 (the causal, mechanism-level form of the question, which needs a causal graph).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence

import numpy as np

from raywatch.drift.intervals import z_value
from raywatch.drift.performance import _label_key
from raywatch.drift.report import _clean
from raywatch.stats.columns import encode_categorical, to_columns

__all__ = ["PredictionByBin", "FeatureAttribution", "Attribution", "attribute_shift"]


def _floats(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    return np.array([float(v) if isinstance(v, (int, float, np.number)) else math.nan for v in arr.tolist()])


class PredictionByBin:
    """Per feature and reference bin: rows, sum and sum of squares of the prediction.

    Parameters
    ----------
    profile
        The reference :class:`~raywatch.stats.profile.Profile` whose bins are used.
    prediction
        The prediction column (numerical; or a label column with ``positive``).
    features
        The features to tabulate (default: every profile column but the prediction).
    positive
        For a label prediction: the class whose share is attributed (the prediction counts
        as 1.0 for it, 0.0 otherwise).
    """

    def __init__(self, profile: Any, prediction: str = "prediction", features: Optional[Sequence[str]] = None,
                 positive: Optional[Hashable] = None):
        self.fingerprint = profile.fingerprint
        self.prediction = prediction
        self.positive = None if positive is None else _label_key(positive)
        names = [c for c in profile.columns if c != prediction] if features is None else list(features)
        unknown = [n for n in names if n not in profile.specs]
        if unknown:
            raise KeyError(f"features not in the profile: {', '.join(unknown)}")
        self.specs = [profile.specs[n] for n in names]
        self.features = names
        sizes = np.array([s.n_bins + 1 for s in self.specs], dtype=np.int64)  # + the missing cell
        self.offsets = np.concatenate(([0], np.cumsum(sizes)))
        self.table = np.zeros((3, int(self.offsets[-1])))  # rows, sum, sum of squares
        self.skipped = 0  # rows without a usable prediction

    def _bins(self, spec: Any, arr: np.ndarray) -> np.ndarray:
        missing = spec.n_bins
        if spec.kind == "numerical":
            x = _floats(arr)
            ok = np.isfinite(x)
            return np.where(ok, np.searchsorted(spec.edges, np.where(ok, x, 0.0), side="left"), missing)
        codes = encode_categorical(arr, spec.lookup, spec.families, spec.n_bins)
        unseen = missing if spec.kind == "boolean" else spec.n_bins - 1  # as the summary counts them
        return np.where(codes < 0, missing, np.where(codes == spec.n_bins, unseen, codes))

    def update(self, batch: Any) -> None:
        """Add a batch (anything ``Profile.summarize`` accepts) holding the features and the prediction."""
        cols, n = to_columns(batch)
        if self.prediction not in cols:
            raise KeyError(f"the batch has no prediction column {self.prediction!r}")
        raw = cols[self.prediction]
        if self.positive is None:
            y = _floats(raw)
        else:
            y = np.array([math.nan if v is None else float(_label_key(v) == self.positive) for v in raw.tolist()])
        ok = np.isfinite(y)
        self.skipped += int(n - ok.sum())
        y = y[ok]
        weights = (None, y, y * y)
        for i, spec in enumerate(self.specs):
            arr = cols.get(spec.name)
            bins = np.full(y.size, spec.n_bins) if arr is None else self._bins(spec, arr[ok])
            size = spec.n_bins + 1
            lo = self.offsets[i]
            for row, w in enumerate(weights):
                self.table[row, lo : lo + size] += np.bincount(bins, weights=w, minlength=size)

    def merge(self, other: "PredictionByBin") -> "PredictionByBin":
        """A new table of both (counts exact, sums to rounding)."""
        if (other.fingerprint, other.features, other.prediction) != (self.fingerprint, self.features, self.prediction):
            raise ValueError("cannot merge prediction tables of different profiles, features or predictions")
        out = object.__new__(PredictionByBin)
        out.__dict__.update(self.__dict__)
        out.table = self.table + other.table
        out.skipped = self.skipped + other.skipped
        return out

    def cells(self, feature: str) -> np.ndarray:
        """``(3, bins + 1)``: rows, prediction sum and sum of squares per bin of ``feature``."""
        i = self.features.index(feature)
        return self.table[:, self.offsets[i] : self.offsets[i + 1]]

    def to_dict(self) -> Dict[str, Any]:
        return {"fingerprint": self.fingerprint, "prediction": self.prediction, "features": self.features,
                "positive": self.positive, "skipped": self.skipped, "table": self.table.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], profile: Any) -> "PredictionByBin":
        """Inverse of :meth:`to_dict` against the same profile (checked by fingerprint and shape)."""
        if data.get("fingerprint") != profile.fingerprint:
            raise ValueError("the prediction table was made against a different profile")
        out = cls(profile, data["prediction"], data["features"], data.get("positive"))
        table = np.asarray(data["table"], dtype=np.float64)
        if table.shape != out.table.shape or (table[0] < 0).any():
            raise ValueError(f"damaged prediction table: shape {table.shape}, expected {out.table.shape}")
        out.table, out.skipped = table, int(data.get("skipped", 0))
        return out


@dataclass
class FeatureAttribution:
    feature: str
    explained: float  # Σ (q_b − p_b)·m_b: the mean-prediction shift this feature's drift accounts for
    conditional: float  # Δ − explained
    share: Optional[float]  # explained / Δ (None when Δ = 0)
    std_error: float
    z: Optional[float]
    significant: bool
    explains: bool


@dataclass
class Attribution:
    prediction: str
    reference_mean: Optional[float]
    window_mean: Optional[float]
    shift: Optional[float]
    features: List[FeatureAttribution] = field(default_factory=list)  # largest |explained| first
    rows_reference: int = 0
    rows_window: int = 0

    @property
    def explaining(self) -> List[str]:
        return [f.feature for f in self.features if f.explains]

    def to_dict(self) -> Dict[str, Any]:
        return _clean({**asdict(self), "explaining": self.explaining})


def attribute_shift(
    reference: PredictionByBin,
    window: PredictionByBin,
    features: Optional[Sequence[str]] = None,
    *,
    alpha: float = 0.05,
    min_share: float = 0.1,
) -> Attribution:
    """Rank ``features`` (default: all tabulated; pass the drifted ones) by how much of the
    mean-prediction shift between ``reference`` and ``window`` each explains."""
    if (reference.fingerprint, reference.features) != (window.fingerprint, window.features):
        raise ValueError("reference and window tables must come from the same profile and features")
    names = list(window.features if features is None else features)
    if not names:
        return Attribution(window.prediction, None, None, None)
    first = reference.cells(names[0])
    big_n, n = float(reference.cells(names[0])[0].sum()), float(window.cells(names[0])[0].sum())
    if big_n == 0 or n == 0:
        return Attribution(window.prediction, None, None, None, rows_reference=int(big_n), rows_window=int(n))
    mu_r = float(first[1].sum()) / big_n
    mu_w = float(window.cells(names[0])[1].sum()) / n
    delta = mu_w - mu_r
    crit = z_value(1.0 - alpha / len(names))
    out = []
    for name in names:
        r, w = reference.cells(name), window.cells(name)
        m = np.divide(r[1], r[0], out=np.full(r.shape[1], mu_r), where=r[0] > 0)
        p, q = r[0] / big_n, w[0] / n
        explained = float(np.dot(q - p, m))
        # sampling of both histograms, and of the reference's bin means themselves
        seen = r[0] > 0
        within = np.zeros_like(m)
        within[seen] = np.maximum(r[2][seen] / r[0][seen] - m[seen] ** 2, 0.0) / r[0][seen]
        var = ((float(np.dot(q, m * m)) - float(np.dot(q, m)) ** 2) / n
               + (float(np.dot(p, m * m)) - mu_r**2) / big_n + float(np.dot((q - p) ** 2, within)))
        se = math.sqrt(max(var, 0.0))
        z = explained / se if se > 0 else None
        share = explained / delta if delta != 0 else None
        significant = z is not None and abs(z) >= crit
        out.append(FeatureAttribution(name, explained, delta - explained, share, se, z, significant,
                                      significant and share is not None and abs(share) >= min_share))
    out.sort(key=lambda f: -abs(f.explained))
    return Attribution(window.prediction, mu_r, mu_w, delta, out, int(big_n), int(n))
