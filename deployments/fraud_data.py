"""A seeded generator of card transactions, some of them fraudulent.

Each transaction has the features a card-fraud model typically sees: the amount, the hour
of day, the merchant category, the distance from the card holder's home, whether the card
was present, how many transactions the card made in the last 24 hours and the age of the
account. Frauds differ from genuine transactions in most of them (larger amounts, at night,
online, far from home, bursts of transactions, young accounts), so a linear model on these
features separates them well, but not perfectly.

``drift`` multiplies numerical features (``{"amount": 2.5}``: every amount is 2.5 times
larger) or, for ``merchant_category``, replaces the category mix (``{"merchant_category":
{"online_retail": 0.6, ...}}``). With ``segment`` (a merchant category) the numerical drift
hits that category's transactions only, and ``fraud_wave`` of them become frauds that look
like genuine spending (a model trained before the wave misses them). The demo uses both to
inject data drift and an accuracy drop into one segment.

>>> cols, y = generate_transactions(1000, seed=1)
>>> sorted(cols)
['account_age_days', 'amount', 'card_present', 'distance_km', 'hour', 'merchant_category', 'tx_count_24h']
>>> len(y), bool(0.01 < y.mean() < 0.06)
(1000, True)
>>> rows = to_rows(cols)
>>> sorted(rows[0]) == sorted(cols)
True
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

__all__ = ["FEATURES", "CATEGORIES", "generate_transactions", "to_rows"]

CATEGORIES = [
    "grocery",
    "restaurant",
    "gas_station",
    "online_retail",
    "electronics",
    "travel",
    "entertainment",
    "pharmacy",
]

# category mix of genuine and of fraudulent transactions
_LEGIT_MIX = np.array([0.30, 0.18, 0.14, 0.15, 0.05, 0.04, 0.08, 0.06])
_FRAUD_MIX = np.array([0.04, 0.04, 0.06, 0.38, 0.28, 0.12, 0.06, 0.02])
# median amount per category (USD) for genuine transactions
_MEDIAN_AMOUNT = np.array([45.0, 30.0, 40.0, 60.0, 180.0, 350.0, 35.0, 25.0])

FEATURES = {
    "amount": "numerical",
    "hour": "numerical",
    "merchant_category": "categorical",
    "distance_km": "numerical",
    "card_present": "boolean",
    "tx_count_24h": "numerical",
    "account_age_days": "numerical",
}


def generate_transactions(
    n: int,
    *,
    seed: int = 0,
    fraud_rate: float = 0.03,
    drift: Optional[Mapping[str, Any]] = None,
    segment: Optional[str] = None,
    fraud_wave: float = 0.0,
) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """``n`` transactions as columns, and their labels (1 = fraud); see the module docstring
    for ``drift``, ``segment`` and ``fraud_wave``.

    >>> cols, y = generate_transactions(4000, seed=2, drift={"amount": 3.0}, segment="grocery", fraud_wave=0.5)
    >>> g = cols["merchant_category"] == "grocery"
    >>> bool(y[g].mean() > 0.4 > y[~g].mean())
    True
    """
    rng = np.random.default_rng(seed)
    drift = dict(drift or {})
    y = (rng.random(n) < fraud_rate).astype(np.int64)
    # a third of the frauds are careful and look like their card holder's usual spending
    fraud = (y == 1) & (rng.random(n) >= 0.33)
    nf = int(fraud.sum())
    nl = n - nf

    legit_mix, fraud_mix = _LEGIT_MIX, _FRAUD_MIX
    if "merchant_category" in drift:
        mix = np.array([float(drift["merchant_category"].get(c, 0.0)) for c in CATEGORIES])
        legit_mix = fraud_mix = mix / mix.sum()
    cat = np.empty(n, dtype=np.int64)
    cat[~fraud] = rng.choice(len(CATEGORIES), size=nl, p=legit_mix)
    cat[fraud] = rng.choice(len(CATEGORIES), size=nf, p=fraud_mix)

    amount = _MEDIAN_AMOUNT[cat] * rng.lognormal(0.0, 0.6, size=n)
    amount[fraud] *= rng.lognormal(1.0, 0.5, size=nf)  # frauds: about 2.7x larger

    # genuine: a day-time mixture; fraud: mostly at night
    hour = np.where(
        rng.random(n) < 0.55, rng.normal(13.0, 3.0, size=n), rng.normal(19.0, 2.5, size=n)
    )
    hour[fraud] = np.where(rng.random(nf) < 0.6, rng.normal(3.0, 1.8, size=nf), rng.uniform(0, 24, size=nf))
    hour = np.mod(np.round(hour), 24).astype(np.int64)

    distance = rng.lognormal(np.log(6.0), 1.0, size=n)
    travelling = rng.random(n) < 0.03  # genuine card holders away from home
    distance[travelling] = rng.lognormal(np.log(150.0), 1.0, size=int(travelling.sum()))
    distance[fraud] = rng.lognormal(np.log(180.0), 1.2, size=nf)

    card_present = rng.random(n) < np.where(fraud, 0.15, 0.72)
    online = cat == CATEGORIES.index("online_retail")
    card_present[online] = False

    tx_count = rng.poisson(np.where(fraud, 6.0, 2.0))
    account_age = np.ceil(rng.exponential(np.where(fraud, 120.0, 1400.0))).astype(np.int64)

    cols: Dict[str, np.ndarray] = {
        "amount": np.round(amount, 2),
        "hour": hour,
        "merchant_category": np.array(CATEGORIES, dtype=object)[cat],
        "distance_km": np.round(distance, 2),
        "card_present": card_present,
        "tx_count_24h": tx_count.astype(np.int64),
        "account_age_days": account_age,
    }
    hit = np.ones(n, dtype=bool) if segment is None else cat == CATEGORIES.index(segment)
    for name, factor in drift.items():
        if name == "merchant_category":
            continue
        if name not in cols or FEATURES[name] != "numerical":
            raise ValueError(f"cannot drift {name!r}: not a numerical feature of {sorted(FEATURES)}")
        cols[name] = np.where(hit, cols[name] * float(factor), cols[name]).astype(cols[name].dtype)
    if fraud_wave:
        y = np.where(hit & (rng.random(n) < float(fraud_wave)), 1, y)
    return cols, y


def to_rows(cols: Mapping[str, np.ndarray]) -> List[Dict[str, Any]]:
    """Columns to JSON-able row dicts (what a client sends, one per request)."""
    names = list(cols)
    values = [np.asarray(cols[k]).tolist() for k in names]
    return [dict(zip(names, vals)) for vals in zip(*values)]
