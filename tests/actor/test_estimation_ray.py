"""Issue 13 end to end on a real Ray cluster: a monitored deployment whose reference profile has
the extensions (label-free performance estimation, correlations, PCA, outlier fences). Its
replicas summarize the traffic (the scores and predictions the model returns included), the
stats actor estimates accuracy and ROC AUC without any label, and both show in
``raywatch status`` and on ``/metrics``. (Realized against estimated and the concept-drift alert
are tested end to end through the stats actor's core: tests/aggregate/test_estimation_core.py.)
"""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import click
import numpy as np
import pytest
from rw_batches import unique_name
from rw_test_support import wait_until
from test_e2e_ray import _remove  # the Serve application deleted, the stats actor killed

pytestmark = [pytest.mark.ray]


def _world(n, rng):
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    p = 1 / (1 + np.exp(-(2 * x1 + x2)))
    return x1, x2, p, (rng.random(n) < p).astype(int)


def test_monitored_deployment_estimates_performance_in_status_and_metrics(serve_clean, tmp_path):
    from ray import serve

    import raywatch
    from raywatch.cli.status import status_lines
    from raywatch.stats.profile import Profile

    rng = np.random.default_rng(0)
    x1, x2, p, y = _world(5000, rng)
    score = p ** 1.3
    profile = Profile.fit({"x1": x1, "x2": x2, "score": score, "prediction": (score >= 0.5).astype(int), "label": y},
                          performance={"target": "label", "scores": "score", "prediction": "prediction"},
                          correlation=True, pca=True, outliers=True, seed=0)
    path = tmp_path / "reference.rwprofile"
    profile.save(path)
    name = unique_name("rw-est")
    cfg = {
        "model": "scorer",
        "profile_path": str(path),
        "actor": {"name": name, "sqlite_path": str(tmp_path / "stats.sqlite"), "metrics_port": 0, "api_port": 0},
        "windows": {"length": 5, "rolling": 60, "grace": 1, "evaluation_interval": 1},
        "capture": {"feedback": True},
        "shipping": {"flush_interval": 0.2},
        "alerting": {"watchdog": False},
    }

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Scorer:
        def __call__(self, row):
            import math

            s = (1 / (1 + math.exp(-(2 * row["x1"] + row["x2"])))) ** 1.3  # (self-contained: pickled by value)
            return {"prediction": int(s >= 0.5), "score": s}

    handle = serve.run(raywatch.monitor(Scorer, cfg).bind(), name="est", route_prefix="/est")
    actor_cfg = raywatch.MonitorConfig.model_validate(cfg)
    key = "est/Scorer"
    try:
        xs1, xs2, _, _ = _world(600, np.random.default_rng(1))
        with ThreadPoolExecutor(8) as pool:
            out = list(pool.map(lambda i: handle.remote({"x1": float(xs1[i]), "x2": float(xs2[i])}).result(timeout_s=60),
                                range(600)))
        assert len(out) == 600 and all(set(o) == {"prediction", "score"} for o in out)

        seen = {}

        def estimated():
            st = raywatch.status(key, config=actor_cfg)
            m = seen["model"] = st["models"].get(key) or {}
            seen["actors"] = st.get("actors")
            est = (m.get("rolling") or {}).get("estimation") or {}
            # every summarized row is in the estimate (rows shipped before the replica had loaded
            # its profile are counted as requests but not summarized)
            rows = (m.get("totals") or {}).get("rows", 0)
            return m if rows >= 400 and est.get("rows") == rows else None

        try:
            m = wait_until(estimated, timeout=90, retry_errors=True, what="estimated performance in status")
        except AssertionError:
            m = seen.get("model") or {}
            roll = m.get("rolling") or {}
            raise AssertionError(f"no estimate over the summarized rows: profile {m.get('profile')}, totals {m.get('totals')}, "
                                 f"rolling {sorted(roll)}, estimation {roll.get('estimation')}, "
                                 f"actors {seen.get('actors')}") from None
        est = m["rolling"]["estimation"]["metrics"]
        # what the accuracy is expected to be under the reference's law (no concept drift here)
        true_p = 1 / (1 + np.exp(-(2 * xs1 + xs2)))
        expected_acc = float(np.mean(np.where(np.array([o["prediction"] for o in out]) == 1, true_p, 1 - true_p)))
        acc, auc = est["accuracy"], est["roc_auc"]
        assert acc["lower"] <= acc["value"] <= acc["upper"] and 0.7 < acc["value"] < 0.9
        assert auc["lower"] <= auc["value"] <= auc["upper"] and 0.8 < auc["value"] < 0.95
        assert acc["lower"] <= expected_acc <= acc["upper"]
        assert m["rolling"]["correlation"]["tested"] and m["rolling"]["reconstruction"]["tested"]
        text = "\n".join(click.unstyle(line) for line in status_lines({"models": {key: m}}))
        assert f"estimated ({m['totals']['rows']:,} rows, no labels; band ±3 SE; assumes no concept drift): accuracy " in text
        assert "roc_auc " in text and "calibration: ECE " in text and "multivariate: correlation ok" in text

        import ray as ray_mod

        metrics = ray_mod.get(ray_mod.get_actor(name, namespace="raywatch").metrics_address.remote())
        body = wait_until(lambda: (t := urllib.request.urlopen(metrics, timeout=10).read().decode())
                          and "raywatch_estimated_roc_auc{" in t and t, timeout=30, retry_errors=True, what="/metrics")
        for series in ("raywatch_estimated_accuracy{", "raywatch_estimated_roc_auc{",
                       'raywatch_estimated_performance_lower{', "raywatch_calibration_error{",
                       "raywatch_reconstruction_error{", "raywatch_correlation_change_max{", "raywatch_outlier_share{"):
            assert series in body, series
        line = next(ln for ln in body.splitlines() if ln.startswith("raywatch_estimated_roc_auc{"))
        assert 'model="scorer"' in line and float(line.rsplit(" ", 1)[1]) == pytest.approx(auc["value"], abs=0.02)
    finally:
        _remove(serve, "est", name)
