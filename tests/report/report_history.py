"""A realistic ``history()`` dict for the report tests, shaped as the stats actor returns
it (per model: its labels, each feature's reference and current distributions, and the
closed windows with their figures keyed by the metric catalogue's names; then the alert
transitions): a fraud model whose ``amount`` drifts half-way through, whose latency
regresses later, with feedback, and a set of alerts that fire and resolve."""

from __future__ import annotations

import numpy as np

T0 = 1_763_870_400.0  # 2025-11-23 04:00:00 UTC
WINDOW = 10.0
N = 36
DRIFT_AT = 15  # window index where amount starts drifting
SLOW_AT = 24  # window index where latency regresses


def make_history(seed: int = 0, gpu: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    edges = [0, 25, 50, 100, 200, 400, 800, 1600]
    ref_amount = [3000, 5200, 6100, 3400, 1500, 600, 200]
    cur_amount = [400, 900, 1800, 2900, 2700, 1500, 600]  # shifted right
    cats = ["grocery", "restaurant", "gas_station", "online_retail", "electronics", "travel"]
    features = {
        "amount": {"kind": "numerical", "reference": {"edges": edges, "counts": ref_amount}, "current": {"edges": edges, "counts": cur_amount}},
        "hour": {
            "kind": "numerical",
            "reference": {"edges": list(range(0, 25, 3)), "counts": [300, 150, 900, 2600, 3300, 2800, 3500, 1500]},
            "current": {"edges": list(range(0, 25, 3)), "counts": [31, 14, 92, 255, 340, 270, 352, 149]},
        },
        "merchant_category": {
            "kind": "categorical",
            "reference": {"categories": cats, "counts": [6000, 3600, 2800, 3000, 1000, 800]},
            "current": {"categories": cats, "counts": [590, 370, 275, 310, 95, 84]},
        },
        "card_present": {
            "kind": "boolean",
            "reference": {"categories": ["False", "True"], "counts": [6000, 14000]},
            "current": {"categories": ["False", "True"], "counts": [610, 1390]},
        },
    }
    windows = []
    for i in range(N):
        start = T0 + i * WINDOW
        req = int(rng.integers(900, 1100))
        slow = i >= SLOW_AT
        p50 = 0.004 + rng.normal(0, 0.0003) + (0.05 if slow else 0)
        drift = {}
        for f in features:
            drifted = f == "amount" and i >= DRIFT_AT
            p = float(rng.uniform(1e-9, 1e-6)) if drifted else float(rng.uniform(0.05, 1.0))
            stat = 0.3 + rng.normal(0, 0.02) if drifted else abs(rng.normal(0.02, 0.01))
            drift[f] = {"method": "ks" if features[f]["kind"] == "numerical" else "chi2", "statistic": stat, "p_value": p, "drifted": drifted}
        errors = int(rng.poisson(2 if not slow else 15))
        w = {
            "start": start,
            "end": start + WINDOW,
            "requests": req,
            "errors": errors,
            "throughput_rps": req / WINDOW,
            "error_rate": errors / req,
            "latency_p50_seconds": p50,
            "latency_p95_seconds": p50 * 2.2,
            "latency_p99_seconds": p50 * 3.5,
            "cpu_percent": 35 + rng.normal(0, 3),
            "rss_bytes": 420e6 + i * 1e6,
            "drift": drift,
            "dataset_drift": False,
            "performance": {"accuracy": 0.97 - (0.05 if i >= DRIFT_AT else 0) + rng.normal(0, 0.005), "roc_auc": 0.9 + rng.normal(0, 0.01), "f1": 0.6 + rng.normal(0, 0.02)}
            if i % 3 == 0
            else {},
        }
        if gpu:
            w["gpu_utilization"] = 50 + rng.normal(0, 5)
        windows.append(w)
    labels = {"app": "fraud", "deployment": "FraudModel", "model": "fraud", "version": "v1"}
    alerts = [
        {"ts": T0 + (DRIFT_AT + 2) * WINDOW, "alertname": "FeatureDrift", "state": "firing", "severity": "warning",
         "labels": {**labels, "feature": "amount"}, "annotations": {"summary": "amount drifted (p < 1e-6)"}, "value": 1.0},
        {"ts": T0 + (SLOW_AT + 2) * WINDOW, "alertname": "HighLatencyP95", "state": "firing", "severity": "critical",
         "labels": labels, "annotations": {"summary": "p95 latency above 50 ms"}, "value": 0.12},
        {"ts": T0 + 5 * WINDOW, "alertname": "ErrorRate", "state": "firing", "severity": "info",
         "labels": labels, "annotations": {"summary": "errors <b>above</b> 0.1%"}, "value": 0.002},
        {"ts": T0 + 9 * WINDOW, "alertname": "ErrorRate", "state": "resolved", "severity": "info",
         "labels": labels, "annotations": {"summary": "errors back to normal"}, "value": 0.0005},
    ]
    return {"models": {"fraud/FraudModel": {"labels": labels, "features": features, "windows": windows}}, "alerts": alerts}


def fraud_features(n: int = 3000, seed: int = 3) -> dict:
    """Reference vs current histograms from the real fraud profile, current drifted on amount
    and distance_km (the demo's injection), in the history() 'features' format."""
    from deployments.fraud import PREDICTIONS, reference_profile
    from deployments.fraud_data import FEATURES, generate_transactions

    profile = reference_profile()
    cols, _ = generate_transactions(n, seed=seed, drift={"amount": 3.0, "distance_km": 5.0})
    summary = profile.summarize(cols)
    kinds = {**FEATURES, **PREDICTIONS}
    out = {}
    for name in FEATURES:
        ref = profile.histogram(name)
        cur = profile.histogram(name, summary)
        out[name] = {"kind": kinds[name], "reference": ref, "current": cur}
    return out
