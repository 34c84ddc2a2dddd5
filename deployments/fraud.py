"""A card-fraud classifier served with Ray Serve.

The model — L2-regularised logistic regression on engineered features — is trained when a
replica starts, on 20,000 transactions from the seeded generator in
:mod:`deployments.fraud_data` (about 0.1 s). A request is one transaction as a JSON object
(or a list of them); the answer is the fraud probability and the decision::

    POST /fraud  {"amount": 412.5, "hour": 3, "merchant_category": "electronics",
                  "distance_km": 230.0, "card_present": false, "tx_count_24h": 7,
                  "account_age_days": 40}
    -> {"is_fraud": true, "probability": 0.97}

The decision comes first and the probability is named ``probability``: raywatch's default
extraction then joins ground truth to the decision and scores ROC-AUC on the probability.

Nothing here knows about raywatch: ``configs/serve-fraud.yaml`` switches monitoring on.

>>> clf = FraudClassifier.train(seed=0, n=5000)
>>> clf.auc > 0.75
True
>>> out = clf.predict_rows([{"amount": 20.0, "hour": 12, "merchant_category": "grocery",
...     "distance_km": 2.0, "card_present": True, "tx_count_24h": 1, "account_age_days": 2000}])
>>> out[0]["is_fraud"], out[0]["probability"] < 0.05
(False, True)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from ray import serve

from deployments.fraud_data import CATEGORIES, FEATURES, generate_transactions
from deployments.models import LogisticRegression, roc_auc

logger = logging.getLogger("deployments.fraud")

__all__ = ["FraudClassifier", "FraudModel", "app", "build", "reference_data", "reference_profile"]

TRAIN_SEED = 0
TRAIN_ROWS = 20_000
PREDICTIONS = {"is_fraud": "boolean", "probability": "numerical"}


def featurize(cols: Mapping[str, Sequence[Any]]) -> np.ndarray:
    """Model inputs from feature columns: log amounts and distances, the hour on a circle,
    one-hot merchant category, card present, transaction count, log account age."""
    amount = np.asarray(cols["amount"], dtype=np.float64)
    hour = np.asarray(cols["hour"], dtype=np.float64)
    cat = np.asarray(cols["merchant_category"], dtype=object)
    onehot = np.stack([(cat == c) for c in CATEGORIES[1:]], axis=1).astype(np.float64)
    return np.column_stack(
        [
            np.log1p(np.maximum(amount, 0.0)),
            np.sin(2 * np.pi * hour / 24.0),
            np.cos(2 * np.pi * hour / 24.0),
            onehot,
            np.log1p(np.maximum(np.asarray(cols["distance_km"], dtype=np.float64), 0.0)),
            np.asarray(cols["card_present"], dtype=np.float64),
            np.asarray(cols["tx_count_24h"], dtype=np.float64),
            np.log1p(np.maximum(np.asarray(cols["account_age_days"], dtype=np.float64), 0.0)),
        ]
    )


def _columns(rows: Sequence[Mapping[str, Any]]) -> Dict[str, List[Any]]:
    missing = [f for f in FEATURES if any(f not in r for r in rows)]
    if missing:
        raise ValueError(f"missing feature(s) {missing}; expected {list(FEATURES)}")
    return {f: [r[f] for r in rows] for f in FEATURES}


class FraudClassifier:
    """The trained model, independent of Ray Serve."""

    def __init__(self, model: LogisticRegression, threshold: float = 0.5):
        self.model = model
        self.threshold = threshold
        self.auc = float("nan")

    @classmethod
    def train(cls, seed: int = TRAIN_SEED, n: int = TRAIN_ROWS, threshold: float = 0.5) -> "FraudClassifier":
        cols, y = generate_transactions(n, seed=seed)
        clf = cls(LogisticRegression(l2=1.0).fit(featurize(cols), y), threshold)
        # held-out check on fresh transactions from the same generator
        test_cols, test_y = generate_transactions(max(n // 4, 1000), seed=seed + 10_000)
        clf.auc = roc_auc(test_y, clf.model.predict_proba(featurize(test_cols)))
        return clf

    def predict_columns(self, cols: Mapping[str, Sequence[Any]]) -> Dict[str, np.ndarray]:
        p = self.model.predict_proba(featurize(cols))
        return {"is_fraud": p >= self.threshold, "probability": p}

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        out = self.predict_columns(_columns(rows))
        return [
            {"is_fraud": bool(d), "probability": round(float(p), 6)}
            for p, d in zip(out["probability"], out["is_fraud"])
        ]


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class FraudModel:
    """One transaction (a JSON object) or a list of them in; probability and decision out."""

    def __init__(self, seed: int = TRAIN_SEED, n_train: int = TRAIN_ROWS, threshold: float = 0.5):
        self.classifier = FraudClassifier.train(seed=seed, n=n_train, threshold=threshold)
        self.simulated_latency = 0.0
        logger.info("fraud model trained on %d transactions, held-out ROC AUC %.3f", n_train, self.classifier.auc)

    def reconfigure(self, config: Optional[Dict[str, Any]]) -> None:
        """``user_config``: ``threshold`` (decision threshold) and ``simulated_latency_ms``,
        extra time per request standing in for a slower model version or a feature lookup
        (the demo raises it in a rollout to show a latency regression being caught)."""
        config = dict(config or {})
        unknown = set(config) - {"threshold", "simulated_latency_ms"}
        if unknown:
            raise ValueError(f"FraudModel user_config: unknown keys {sorted(unknown)}; expected threshold, simulated_latency_ms")
        if "threshold" in config:
            self.classifier.threshold = float(config["threshold"])
        self.simulated_latency = max(float(config.get("simulated_latency_ms", 0.0)), 0.0) / 1000.0

    async def __call__(self, request: Any) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        payload = await request.json() if hasattr(request, "json") else request
        if self.simulated_latency:
            await asyncio.sleep(self.simulated_latency)
        if isinstance(payload, list):
            return self.classifier.predict_rows(payload)
        return self.classifier.predict_rows([payload])[0]


def build(args: Optional[Dict[str, Any]] = None):
    """Application builder for serve config YAML: ``import_path: deployments.fraud:build``,
    ``args: {seed: 0, n_train: 20000, threshold: 0.5}``."""
    args = dict(args or {})
    unknown = set(args) - {"seed", "n_train", "threshold"}
    if unknown:
        raise ValueError(f"deployments.fraud:build: unknown args {sorted(unknown)}; expected seed, n_train, threshold")
    return FraudModel.bind(**args)


app = FraudModel.bind()


def reference_data(seed: int = TRAIN_SEED, n: int = TRAIN_ROWS, with_predictions: bool = True) -> Dict[str, np.ndarray]:
    """The training features (and, by default, the model's predictions on them) as columns."""
    cols, _ = generate_transactions(n, seed=seed)
    if with_predictions:
        cols.update(FraudClassifier.train(seed=seed, n=n).predict_columns(cols))
    return cols


def reference_profile(seed: int = TRAIN_SEED, n: int = TRAIN_ROWS):
    """A :class:`raywatch.stats.profile.Profile` of the training data and predictions, with the
    reference tables that let raywatch say which features moved the predictions when they drift,
    and each merchant category's own reference (its segment is tested against its own rows:
    grocery amounts are small, electronics ones large, and neither is drift)."""
    from raywatch.drift.attribution_tables import fit_reference
    from raywatch.drift.segment_reference import fit_segment_reference
    from raywatch.stats.profile import Profile

    data = reference_data(seed, n)
    profile = Profile.fit(data, kinds={**FEATURES, **PREDICTIONS})
    fit_segment_reference(profile, data, ["merchant_category"], seed=seed)
    return fit_reference(profile, data, predictions=list(PREDICTIONS), positive={"is_fraud": True})
