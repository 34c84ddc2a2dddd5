"""A regressor served with Ray Serve: FiveThirtyEight's presidential approval rating from
five pollsters' numbers.

Trained by ridge least squares when a replica starts, on river's bundled ``TrumpApproval``
data set (1,001 days; shipped inside the river package, no download). A request is one
day's polls as a JSON object (or a list of them)::

    POST /approval  {"gallup": 43.8, "ipsos": 46.2, "morning_consult": 48.3,
                     "rasmussen": 44.1, "you_gov": 43.6}
    -> {"approval": 43.9}

>>> reg = ApprovalRegressor.train()
>>> reg.rmse < 1.0
True
>>> round(reg.predict_rows([dict(gallup=43.8, ipsos=46.2, morning_consult=48.3,
...     rasmussen=44.1, you_gov=43.6)])[0]["approval"])
44
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from ray import serve

from deployments.models import LeastSquares

logger = logging.getLogger("deployments.approval")

__all__ = ["ApprovalRegressor", "ApprovalModel", "app", "build", "load_polls", "reference_data", "reference_profile"]

FEATURES = {name: "numerical" for name in ("gallup", "ipsos", "morning_consult", "rasmussen", "you_gov")}
PREDICTIONS = {"approval": "numerical"}


def load_polls() -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """river's TrumpApproval as feature columns and the target (FiveThirtyEight's number)."""
    from river.datasets import TrumpApproval

    rows = list(TrumpApproval())
    cols = {f: np.array([x[f] for x, _ in rows], dtype=np.float64) for f in FEATURES}
    return cols, np.array([y for _, y in rows], dtype=np.float64)


class ApprovalRegressor:
    def __init__(self, model: LeastSquares):
        self.model = model
        self.rmse = float("nan")

    @classmethod
    def train(cls, l2: float = 1.0, holdout: float = 0.2) -> "ApprovalRegressor":
        cols, y = load_polls()
        X = np.column_stack([cols[f] for f in FEATURES])
        cut = int(len(y) * (1 - holdout))  # time-ordered: train on the past, test on the future
        reg = cls(LeastSquares(l2=l2).fit(X[:cut], y[:cut]))
        reg.rmse = float(np.sqrt(np.mean((reg.model.predict(X[cut:]) - y[cut:]) ** 2)))
        reg.model = LeastSquares(l2=l2).fit(X, y)  # then on everything
        return reg

    def predict_columns(self, cols: Mapping[str, Sequence[float]]) -> Dict[str, np.ndarray]:
        X = np.column_stack([np.asarray(cols[f], dtype=np.float64) for f in FEATURES])
        return {"approval": self.model.predict(X)}

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, float]]:
        missing = [f for f in FEATURES if any(f not in r for r in rows)]
        if missing:
            raise ValueError(f"missing feature(s) {missing}; expected {list(FEATURES)}")
        out = self.predict_columns({f: [r[f] for r in rows] for f in FEATURES})
        return [{"approval": round(float(v), 4)} for v in out["approval"]]


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class ApprovalModel:
    def __init__(self, l2: float = 1.0):
        self.regressor = ApprovalRegressor.train(l2=l2)
        logger.info("approval model trained, held-out RMSE %.3f points", self.regressor.rmse)

    async def __call__(self, request: Any) -> Union[Dict[str, float], List[Dict[str, float]]]:
        payload = await request.json() if hasattr(request, "json") else request
        if isinstance(payload, list):
            return self.regressor.predict_rows(payload)
        return self.regressor.predict_rows([payload])[0]


def build(args: Optional[Dict[str, Any]] = None):
    """Application builder: ``import_path: deployments.approval:build``, ``args: {l2: 1.0}``."""
    args = dict(args or {})
    unknown = set(args) - {"l2"}
    if unknown:
        raise ValueError(f"deployments.approval:build: unknown args {sorted(unknown)}; expected l2")
    return ApprovalModel.bind(**args)


app = ApprovalModel.bind()


def reference_data(with_predictions: bool = True) -> Dict[str, np.ndarray]:
    """The training features (and the model's predictions on them) as columns."""
    cols, _ = load_polls()
    if with_predictions:
        cols.update(ApprovalRegressor.train().predict_columns(cols))
    return cols


def reference_profile():
    """A :class:`raywatch.stats.profile.Profile` of the training data and predictions."""
    from raywatch.stats.profile import Profile

    return Profile.fit(reference_data(), kinds={**FEATURES, **PREDICTIONS})
