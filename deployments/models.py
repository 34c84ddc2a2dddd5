"""Two small, real models in numpy: L2-regularised logistic regression (Newton's method)
and ridge least squares. scikit-learn is not a dependency; these train in milliseconds.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 3))
>>> y = (X @ [2.0, -1.0, 0.0] + rng.logistic(size=2000) > 0).astype(int)
>>> clf = LogisticRegression().fit(X, y)
>>> bool(clf.coef_[0] > 1.5 and clf.coef_[1] < -0.5 and abs(clf.coef_[2]) < 0.3)
True
>>> reg = LeastSquares().fit(X, X @ [1.0, 2.0, 3.0] + 4.0)
>>> np.round(reg.coef_, 3).tolist(), round(float(reg.intercept_), 3)
([1.0, 2.0, 3.0], 4.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["LogisticRegression", "LeastSquares", "roc_auc"]


class _Standardize:
    def _fit_scale(self, X: np.ndarray) -> np.ndarray:
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return (X - self.mean_) / self.scale_

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_


class LogisticRegression(_Standardize):
    """Binary logistic regression with an L2 penalty ``l2`` on the standardised weights."""

    def __init__(self, l2: float = 1.0, max_iter: int = 50, tol: float = 1e-8):
        self.l2, self.max_iter, self.tol = l2, max_iter, tol

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LogisticRegression":
        Z = self._fit_scale(np.asarray(X, dtype=np.float64))
        n, d = Z.shape
        A = np.hstack([np.ones((n, 1)), Z])
        w = np.zeros(d + 1)
        y = np.asarray(y, dtype=np.float64)
        penalty = np.full(d + 1, self.l2)
        penalty[0] = 0.0  # no penalty on the intercept
        for _ in range(self.max_iter):
            p = 1.0 / (1.0 + np.exp(-np.clip(A @ w, -35, 35)))
            grad = A.T @ (p - y) + penalty * w
            hess = (A * (p * (1 - p))[:, None]).T @ A + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < self.tol:
                break
        self.intercept_z_, self.w_ = w[0], w[1:]
        self.coef_ = self.w_  # weights of the standardised features
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._scale(X) @ self.w_ + self.intercept_z_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of the positive class, one per row."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -35, 35)))


class LeastSquares(_Standardize):
    """Ridge regression (``l2`` on the standardised weights) solved in closed form."""

    def __init__(self, l2: float = 0.0):
        self.l2 = l2

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LeastSquares":
        Z = self._fit_scale(np.asarray(X, dtype=np.float64))
        y = np.asarray(y, dtype=np.float64)
        ym = y.mean()
        w = np.linalg.solve(Z.T @ Z + self.l2 * np.eye(Z.shape[1]), Z.T @ (y - ym))
        self.coef_ = w / self.scale_  # weights of the raw features
        self.intercept_ = ym - self.mean_ @ self.coef_
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U), ties counted as half.

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(y).astype(bool)
    # ranks 1..n, tied scores sharing their average rank (numpy only: importing scipy.stats
    # would cost seconds at replica start)
    _, inverse, counts = np.unique(np.asarray(score), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
