"""A small model whose world changes, and everything remediation needs to fix it.

Two numeric features, ``x1`` and ``x2`` (and a noise feature ``x3``). Before the drift the
label is ``x1 + 0.5·x2 > 0``; after it, ``x2`` moves (mean 0.8) and the label becomes
``x1 − x2 > −0.3``. Version ``v1`` is a logistic regression trained on the world before; a
retrain on logged, labelled traffic from after the drift wins back the accuracy.

* :class:`Scorer` — the model deployment. It loads its artifact (a JSON file of weights)
  from its ``user_config`` (``artifact``, ``version``) in ``reconfigure``, so promotion is a
  ``user_config`` change that Serve applies in place. An artifact may carry ``fail`` (the
  share of requests it raises on) and ``delay`` (seconds it sleeps): the failure
  injections of the tests and the demo.
* :func:`build` — the application: the rollout router in front of the scorer, with the
  payload log (``args``: ``app``, ``controller``, ``namespace``, ``payload_log``);
  :func:`scorer_app` — the scorer alone, for ``raywatch.serve:app``, which adds the router
  itself (``raywatch demo --remediate``), with :func:`reference_profile`.
* :func:`retrain` / :func:`predict` — the remediation policy's functions; ``retrain_*``
  variants inject failures (a retrain that raises, a worse model, a candidate that fails
  or hangs when served).

>>> X, y = sample(2000, drifted=False, seed=1)
>>> w = fit(X, y)
>>> accuracy(w, *sample(2000, drifted=False, seed=2)) > 0.9, accuracy(w, *sample(2000, drifted=True, seed=3)) < 0.8
(True, True)
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

FEATURES = ("x1", "x2", "x3")


def artifact_dir() -> str:
    d = os.environ.get("RAYWATCH_ARTIFACTS") or os.path.join(tempfile.gettempdir(), "raywatch-artifacts")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def sample(n: int, *, drifted: bool, seed: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: ``n`` rows of the world before (or after) the drift."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0.0, 1.0, n)
    x2 = rng.normal(0.8 if drifted else 0.0, 1.0, n)
    x3 = rng.normal(0.0, 1.0, n)
    y = (x1 - x2 > -0.3) if drifted else (x1 + 0.5 * x2 > 0)
    return np.column_stack([x1, x2, x3]), y.astype(np.int64)


def truth(row: Mapping[str, float], drifted: bool = True) -> int:
    """The label of one request (what feedback later says)."""
    x1, x2 = float(row["x1"]), float(row["x2"])
    return int(x1 - x2 > -0.3) if drifted else int(x1 + 0.5 * x2 > 0)


def requests(n: int, *, drifted: bool, seed: Optional[int] = None) -> List[Dict[str, float]]:
    X, _ = sample(n, drifted=drifted, seed=seed)
    return [dict(zip(FEATURES, map(float, r))) for r in X]


def fit(X: np.ndarray, y: np.ndarray, iters: int = 300, lr: float = 0.5) -> Dict[str, Any]:
    """Logistic regression by gradient descent (standardized inputs)."""
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-9
    Z = (X - mu) / sd
    w, b = np.zeros(Z.shape[1]), 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(Z @ w + b)))
        g = p - y
        w -= lr * Z.T @ g / len(y)
        b -= lr * float(g.mean())
    return {"w": w.tolist(), "b": b, "mu": mu.tolist(), "sd": sd.tolist(), "features": list(FEATURES)}


def scores(model: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    Z = (X - np.asarray(model["mu"])) / np.asarray(model["sd"])
    return 1 / (1 + np.exp(-(Z @ np.asarray(model["w"]) + model["b"])))


def accuracy(model: Mapping[str, Any], X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((scores(model, X) >= 0.5).astype(int) == y))


def save(model: Mapping[str, Any], version: str, **inject: Any) -> str:
    """Write an artifact (weights, version and failure injections) and return its path."""
    path = os.path.join(artifact_dir(), f"remediable-{version}-{os.urandom(4).hex()}.json")
    with open(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600), "w") as f:
        json.dump({**model, "version": version, **inject}, f)
    return path


def load(path: str) -> Dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def initial_artifact(seed: int = 0) -> str:
    """Version v1: trained on the world before the drift."""
    return save(fit(*sample(5000, drifted=False, seed=seed)), "v1")


# --------------------------------------------------------------------------- serving


def _deployment() -> Any:
    from ray import serve

    @serve.deployment(name="Scorer", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=200)
    class Scorer:
        """Loads its artifact from ``user_config`` (in place, on every change)."""

        def __init__(self) -> None:
            self.model: Optional[Dict[str, Any]] = None
            self.version: Optional[str] = None

        def reconfigure(self, user_config: Mapping[str, Any]) -> None:
            self.model = load(user_config["artifact"])
            self.version = str(user_config.get("version") or self.model.get("version"))

        async def __call__(self, payload: Mapping[str, Any]) -> Dict[str, Any]:
            m = self.model
            if m.get("delay"):
                await asyncio.sleep(float(m["delay"]))
            if m.get("fail") and random.random() < float(m["fail"]):
                raise RuntimeError(f"model {self.version} failed (injected)")
            x = np.array([[float(payload[f]) for f in m["features"]]])
            s = float(scores(m, x)[0])
            return {"prediction": int(s >= 0.5), "score": s}

    return Scorer


def scorer_app(args: Optional[Mapping[str, Any]] = None) -> Any:
    """The scorer alone, for ``raywatch.serve:app`` (its ``application.import_path``): with
    ``remediation:`` in the monitor settings the builder puts the rollout router in front."""
    return _deployment().bind()


def reference_profile(seed: int = 0, n: int = 5000) -> Any:
    """The profile of v1's training data (the world before the drift)."""
    from raywatch.stats.profile import Profile

    X, _ = sample(n, drifted=False, seed=seed)
    return Profile.fit({f: X[:, i] for i, f in enumerate(FEATURES)}, seed=seed)


def build(args: Mapping[str, Any]) -> Any:
    """The application: the rollout router in front of the scorer (``args``: ``app`` — the
    application's name, ``controller``/``namespace`` of the remediation controller,
    ``payload_log`` — its settings)."""
    from raywatch.serve.router import router_deployment

    app = str(args.get("app", "remediable"))
    router = router_deployment()
    return router.bind(_deployment().bind(), f"{app}/Scorer", controller=args.get("controller", "raywatch-remediation"),
                       namespace=args.get("namespace", "raywatch"), payload_log=args.get("payload_log"),
                       poll_interval=float(args.get("poll_interval", 0.2)), version=args.get("version", "v1"))


# --------------------------------------------------------------------------- remediation


def _train(ctx: Any, version_suffix: str = "") -> Tuple[Dict[str, Any], Any, str]:
    from raywatch.stats.profile import Profile

    df = ctx.dataset.to_pandas()
    X = df[list(FEATURES)].to_numpy(dtype=float)
    y = df[ctx.label].to_numpy(dtype=float).astype(int)
    model = fit(X, y)
    n = int(str(ctx.current_version or "v1").lstrip("v") or 1) + 1
    profile = Profile.fit({f: df[f].to_numpy(dtype=float) for f in FEATURES}, seed=0)
    return model, profile, f"v{n}{version_suffix}"


def retrain(ctx: Any) -> Dict[str, Any]:
    """Fit on the labelled dataset; the candidate's profile is its training data's."""
    model, profile, version = _train(ctx)
    return {"artifact": save(model, version), "version": version, "profile": profile,
            "metrics": {"train_rows": ctx.rows}}


def predict(artifact: str, frame: Any) -> Any:
    m = load(artifact)
    return (scores(m, frame[m["features"]].to_numpy(dtype=float)) >= 0.5).astype(int)


def retrain_raises(ctx: Any) -> Dict[str, Any]:
    raise RuntimeError("out of GPU memory (injected)")


def retrain_worse(ctx: Any) -> Dict[str, Any]:
    """A candidate that learned the rule backwards: worse than the champion."""
    model, profile, version = _train(ctx)
    model["w"] = [-w for w in model["w"]]
    model["b"] = -model["b"]
    return {"artifact": save(model, version), "version": version, "profile": profile}


def retrain_flaky(ctx: Any) -> Dict[str, Any]:
    """A good model that raises on every request when served."""
    model, profile, version = _train(ctx)
    return {"artifact": save(model, version, fail=1.0), "version": version, "profile": profile}


def retrain_hanging(ctx: Any) -> Dict[str, Any]:
    """A good model that takes 30 s to answer when served."""
    model, profile, version = _train(ctx)
    return {"artifact": save(model, version, delay=30.0), "version": version, "profile": profile}
