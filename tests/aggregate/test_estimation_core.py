"""Issue 13 through the stats actor's core (StatsCore, no Ray): a profile with extensions.

* estimated accuracy / ROC AUC with their bands, calibration error, correlation, PCA
  reconstruction and outlier shares reach the rolling view and the series —
  test_estimates_and_multivariate_series_reach_the_view;
* a correlation-only shift, a 1,536-dimensional embedding's shift and outliers reach their
  series and fire their rules; stationary windows do not —
  test_correlation_embedding_and_outliers_through_the_core_and_its_rules;
* the estimate assumes no concept drift: under concept drift (P(label | score) changes) the
  realized accuracy leaves the band and the disagreement rule fires, end to end through the
  rules; without concept drift (a covariate shift, labels still from the reference's law) it
  does not — test_concept_drift_fires_the_disagreement_alert, test_covariate_shift_is_no_disagreement;
* ``drift.expected_run_time`` sets the tests' level, and on stationary windows the measured
  time between false alarms is at least the configured one (issue 13 item 7, window tests) —
  test_window_tests_false_alarms_in_time;
* a streaming detector with ``expected_run_time`` observes its series, is calibrated off the
  actor's loop, keeps its calibration in the model state (data), and on a stationary stream its
  measured run length is at least the configured one (item 7, detectors) —
  test_detector_calibrated_from_expected_run_time.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from raywatch.aggregate import StatsCore
from raywatch.aggregate.model import ModelState
from raywatch.alerts.hub import AlertingHub
from raywatch.config import MonitorConfig
from raywatch.stats.batch import ReplicaBatch
from raywatch.stats.profile import Profile
from raywatch.stats.sketch import LatencySketch

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

T0 = 1_000_000.0
KEY = "app/M"


def world(n, rng, *, concept=False, shift=0.0):
    """Rows of a binary classifier (features, its score and prediction) and true labels.
    ``concept``: the labels follow another law given the score (concept drift); ``shift``: the
    features move (covariate shift), the law stays."""
    x1, x2, x3 = rng.normal(shift, 1, n), rng.normal(size=n), rng.normal(size=n)
    p = 1 / (1 + np.exp(-(2 * x1 + x2)))
    score = p ** 1.3  # miscalibrated: the profile's calibration has work to do
    y = (rng.random(n) < (1 - p if concept else p)).astype(int)
    return {"x1": x1, "x2": x2, "x3": x3, "score": score, "prediction": (score >= 0.5).astype(int)}, y


@pytest.fixture(scope="module")
def cbpe_profile():
    rows, y = world(5000, np.random.default_rng(0))
    return Profile.fit(dict(rows, label=y), performance={"target": "label", "scores": "score", "prediction": "prediction"},
                       correlation=True, pca=True, outliers=True, seed=0)


def batch(prof, rows, seq, ts):
    n = len(next(iter(rows.values())))
    sk = LatencySketch()
    sk.add_many(np.full(n, 0.01))
    preds = ([(f"r{seq}-{i}", int(rows["prediction"][i]), float(rows["score"][i])) for i in range(n)]
             if "prediction" in rows else [])
    return ReplicaBatch(app="app", deployment="M", model="m", version="v1", replica_id="r1", node_id="n",
                        start_ts=ts - 1, end_ts=ts, requests=n, errors={}, statuses={}, latency=sk.to_dict(),
                        summary=prof.summarize(rows).to_bytes(), predictions=preds, resources={}, dropped_total=0,
                        capture_errors_total=0, seq=seq)


def config(**extra):
    data = {"windows": {"length": 10, "rolling": 3, "grace": 0, "evaluation_interval": 1}, "actor": {"sqlite_path": None},
            "alerting": {"watchdog": False, "rules": [
                {"name": "ConceptDrift", "expr": 'estimation_disagreement{metric="accuracy"} == 1', "severity": "warning"},
                {"name": "EstimatedAUCLow", "expr": "estimated_roc_auc < 0.9", "severity": "info"}]}}
    data.update(extra)
    return MonitorConfig(**data)


def run(prof, windows, *, shift=0.0):
    """Ingest one 1,000-row batch per window (``windows``: concept drift per window, True/False)
    with its labels joined, evaluating after each; the last status and the series."""
    rng = np.random.default_rng(1)
    hub = AlertingHub(registry=CollectorRegistry(), background=False)
    cfg = config()
    c = StatsCore(cfg, alerting=hub)
    c.register_model(KEY, cfg, prof.to_bytes())
    fired = []
    try:
        for k, concept in enumerate(windows):
            rows, y = world(1000, rng, concept=concept, shift=shift)
            assert c.ingest(batch(prof, rows, k + 1, T0 + 10 * k + 2), now=T0 + 10 * k + 2) == "ok"
            for i, label in enumerate(y.tolist()):
                c.feedback(f"r{k + 1}-{i}", label, now=T0 + 10 * k + 3)
            st = c.evaluate(now=T0 + 10 * k + 5)["models"][KEY]
            fired.append(sorted(a["labels"]["alertname"] for a in st["alerts"] if a.get("state", "firing") == "firing"))
        return st, c.models[KEY].series, fired
    finally:
        hub.close(timeout=5)


def values(series, name, **labels):
    return [s.value for s in series if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def test_estimates_and_multivariate_series_reach_the_view(cbpe_profile):
    st, series, fired = run(cbpe_profile, [False, False])
    r = st["rolling"]
    est = r["estimation"]
    acc, auc = est["metrics"]["accuracy"], est["metrics"]["roc_auc"]
    # the estimate sits near the realized figures, inside its band
    assert acc["lower"] < acc["value"] < acc["upper"] and auc["lower"] < auc["value"] < auc["upper"]
    assert abs(acc["value"] - st["performance"]["accuracy"]) < acc["upper"] - acc["lower"]
    assert est["rows"] == 2000 and est["calibration_ok"] is True and 0 <= est["calibration_error"] < 0.05
    assert not any(d["disagree"] for d in r["disagreement"].values())
    assert r["correlation"]["tested"] and not r["correlation"]["drifted"]
    assert r["reconstruction"]["tested"] and not r["reconstruction"]["drifted"] and r["multivariate_drift"] is False
    assert 0 <= st["quality"]["x1"]["outlier_share"] < 0.03
    assert st["drift"]["columns"]["x1"]["figures"] in ("exact", "bound")
    assert values(series, "estimated_accuracy") == [pytest.approx(acc["value"])]
    assert values(series, "estimated_performance_lower", metric="roc_auc") == [pytest.approx(auc["lower"])]
    assert values(series, "estimation_disagreement", metric="accuracy") == [0.0]
    for name in ("estimated_roc_auc", "calibration_error", "correlation_change_max", "correlation_drift_detected",
                 "reconstruction_error", "reconstruction_drift_detected", "multivariate_drift"):
        assert len(values(series, name)) == 1, name
    assert values(series, "outlier_share", feature="x2")
    # the example rule on the estimate: the AUC estimate (≈ 0.89) is below 0.9
    assert fired[-1] == ["EstimatedAUCLow"]
    json.dumps(r)  # plain data (the window results are stored as JSON)


def test_concept_drift_fires_the_disagreement_alert(cbpe_profile):
    """The estimate assumes no concept drift: when the labels stop following the reference's
    P(label | score), the estimate stays where it was, the realized accuracy leaves its band
    and the concept-drift rule fires."""
    st, series, fired = run(cbpe_profile, [False, False, True, True, True])
    d = st["rolling"]["disagreement"]["accuracy"]
    assert d["disagree"] is True and d["realized"] < d["estimated"] - d["band"]
    assert abs(st["rolling"]["estimation"]["metrics"]["accuracy"]["value"] - 0.79) < 0.03  # the estimate did not move
    assert values(series, "estimation_disagreement", metric="accuracy") == [1.0]
    assert "ConceptDrift" not in fired[1] and "ConceptDrift" in fired[-1]


def test_covariate_shift_is_no_disagreement(cbpe_profile):
    """A covariate shift that keeps the law: the estimate follows the realized accuracy."""
    st, series, fired = run(cbpe_profile, [False, False, False], shift=1.0)
    est = st["rolling"]["estimation"]["metrics"]["accuracy"]
    assert est["value"] > 0.84  # the shift made the model's job easier, and the estimate sees it
    assert not any(d["disagree"] for d in st["rolling"]["disagreement"].values())
    assert all("ConceptDrift" not in f for f in fired)


DIM = 1536


def mixed(rng, n, topics, *, moved=False):
    """Rows with two numerical features, a third one, and a 1,536-dimensional embedding sent as
    one list of floats per row (as a replica captures it). ``moved``: ``b`` becomes tied to
    ``a`` (both marginals unchanged), the embedding's topic mix moves and ``c`` gets 10 %
    outliers."""
    a, noise = rng.normal(size=n), rng.normal(size=n)
    b = 0.8 * a + 0.6 * noise if moved else noise
    c = rng.normal(size=n)
    if moved:
        c[: n // 10] = 8.0
    weights = np.array([0.1, 0.2, 0.2, 0.2, 0.3] if moved else [0.4, 0.3, 0.15, 0.1, 0.05])
    k = rng.choice(len(weights), size=n, p=weights)
    emb = topics[k] + rng.normal(size=(n, DIM)) * np.linspace(0.05, 0.3, DIM)
    return {"a": a, "b": b, "c": c, "emb": [list(v) for v in emb]}


def test_correlation_embedding_and_outliers_through_the_core_and_its_rules():
    """Items 2–5 through the stats actor's core and its rules: stationary windows are quiet; a
    window where two features become correlated (marginals unchanged, so no column drifts),
    a 1,536-dimensional embedding's topic mix moves and a column gets 10 % outliers sets the
    correlation, embedding and multivariate series and fires their rules."""
    rng = np.random.default_rng(7)
    topics = rng.normal(size=(5, DIM))
    topics *= 8.0 / np.linalg.norm(topics, axis=1, keepdims=True)
    ref = mixed(rng, 4000, topics)
    ref["emb"] = np.asarray(ref["emb"])
    prof = Profile.fit(ref, correlation=True, pca=True, outliers=True, vectors=["emb"], seed=0)
    cfg = MonitorConfig(windows={"length": 10, "rolling": 1, "grace": 0, "evaluation_interval": 10},
                        drift={"expected_run_time": "30d"},  # α 3.9e-06: the shift is plain, false alarms rare
                        actor={"sqlite_path": None}, alerting={"watchdog": False, "rules": [
                            {"name": "MultivariateDrift", "expr": "multivariate_drift == 1", "severity": "warning"},
                            {"name": "EmbeddingDrift", "expr": "embedding_drift_detected == 1", "severity": "warning"},
                            {"name": "Outliers", "expr": "outlier_share > 0.05", "severity": "warning"}]})
    hub = AlertingHub(registry=CollectorRegistry(), background=False)
    c = StatsCore(cfg, alerting=hub)
    c.register_model(KEY, cfg, prof.to_bytes())
    try:
        for k, moved in enumerate([False, False, True]):
            c.ingest(batch(prof, mixed(rng, 500, topics, moved=moved), k + 1, T0 + 10 * k + 2), now=T0 + 10 * k + 2)
            st = c.evaluate(now=T0 + 10 * k + 9.5)["models"][KEY]
            firing = sorted(a["labels"]["alertname"] for a in st["alerts"] if a.get("state", "firing") == "firing")
            r, series = st["rolling"], c.models[KEY].series
            assert r["correlation"]["drifted"] is moved and r["embeddings"]["emb"]["drifted"] is moved
            assert values(series, "correlation_drift_detected") == [float(moved)]
            assert values(series, "embedding_drift_detected", feature="emb") == [float(moved)]
            assert values(series, "multivariate_drift") == [float(moved)]
            assert firing == (["EmbeddingDrift", "MultivariateDrift", "Outliers"] if moved else [])
        assert r["correlation"]["drifted_pairs"] == [["a", "b"]]
        assert not st["drift"]["columns"]["a"]["drifted"] and not st["drift"]["columns"]["b"]["drifted"]
        q = st["quality"]["c"]
        assert q["outlier_share"] >= 0.1 > 0.02 > q["outlier_share_reference"]
        assert values(series, "outlier_share", feature="c") == [pytest.approx(q["outlier_share"])]
    finally:
        hub.close(timeout=5)


def _stationary_alarms(profile, expected_run_time, evaluations):
    """Evaluations whose rolling view (one 10 s window, evaluated once at its end) flags a
    column, over ``evaluations`` stationary windows; p-values alone (no effect floor), so the
    tests run at their level."""
    cfg = MonitorConfig(windows={"length": 10, "rolling": 1, "grace": 0, "evaluation_interval": 10},
                        actor={"sqlite_path": None}, alerting={"watchdog": False},
                        drift={"expected_run_time": expected_run_time, "min_effect_numerical": 0,
                               "min_effect_categorical": 0})
    c = StatsCore(cfg)
    c.register_model("app/Model", cfg, profile.to_bytes())
    alarms = 0
    for k in range(evaluations):
        c.ingest(make_batch(profile, n=200, seq=k + 1, ts=T0 + 10 * k + 5, seed=10_000 + k), now=T0 + 10 * k + 5)
        st = c.evaluate(now=T0 + 10 * k + 9.5)["models"]["app/Model"]
        alarms += any(d.get("drifted") for d in st["drift"]["columns"].values())
    return alarms, st["rolling"]["false_alarms"]


def test_window_tests_false_alarms_in_time(profile):  # noqa: F811
    """Issue 13 item 7 for the rolling-window drift tests, through StatsCore: with
    ``expected_run_time`` = 20 evaluations (α = 0.05), 400 stationary evaluations see at most
    the 20 alarms the run time allows, within three standard errors (one-sided), so the measured
    time between false alarms is at least the configured one within sampling error; a run time
    of 2 evaluations (α = 0.5) alarms far more often (the setting has teeth)."""
    n = 400
    alarms, fa = _stationary_alarms(profile, "200s", n)
    assert fa["alpha"] == pytest.approx(0.05) and fa["run_length_seconds"] == pytest.approx(200.0)
    assert fa["text"] == "α 0.05 per evaluation every 10 s: at most one false alarm per 3.3 minutes per test"
    allowed = n * 10 / 200
    assert alarms <= allowed + 3 * math.sqrt(allowed), alarms
    measured = n * 10 / max(alarms, 1)
    assert measured >= 200 * (1 - 3 / math.sqrt(allowed))
    short, _ = _stationary_alarms(profile, "20s", 100)
    assert short >= 10 and short / 100 > 3 * alarms / n


def test_detector_calibrated_from_expected_run_time(tmp_path):
    """Issue 13 item 7 for a streaming detector, through the model's own detector path
    (``ModelState.detect``, which ingest feeds): it observes its series, is calibrated off the
    loop, stores the calibration as data, and on the stationary stream that follows it alarms no
    more often than the configured run time allows (within three standard errors)."""
    cfg = MonitorConfig(actor={"sqlite_path": None}, detectors={"latency": {
        "method": "page_hinkley", "expected_run_time": "2000s", "reference_values": 500, "calibration_budget": 200_000}})
    ms = ModelState(KEY, {"app": "app"}, cfg)
    rng = np.random.default_rng(5)
    ts = T0
    for x in rng.normal(0.02, 0.002, 499):
        ts += 1.0
        ms.detect("latency", float(x), ts)
    info = ms.calibrations.info("latency", ms.detector_config("latency"))
    assert info["status"] == "collecting" and info["values"] == 499 and ms.detector("latency") is None
    assert info["text"] == "collecting 499 of 500 values to calibrate for one false alarm per 33 minutes"
    ms.detect("latency", 0.02, ts + 1.0)  # the 500th value starts the calibration
    assert ms.calibrations.wait(timeout=60)
    det = ms.detector("latency")
    info = ms.calibrations.info("latency", ms.detector_config("latency"))
    assert info["status"] == "ready" and info["parameter"] == "threshold" and det.params["threshold"] == info["value"]
    assert info["interval"] == pytest.approx(1.0) and info["text"].startswith("one false alarm per 33 minutes (threshold=")
    # the calibration is stored with the model state, as data, and comes back
    state = json.loads(json.dumps(ms.state()))
    again = ModelState(KEY, {"app": "app"}, cfg)
    again.restore(state)
    assert again.detector("latency").params == det.params
    # a stationary stream: measured run length ≥ configured, within sampling error
    n = 100_000
    for x in rng.normal(0.02, 0.002, n):
        ts += 1.0
        ms.detect("latency", float(x), ts)
    alarms = ms.detector_counts.get("latency", 0)
    allowed = n / 2000
    assert alarms <= allowed + 3 * math.sqrt(allowed), alarms
    # other settings: the calibration is made again
    changed = MonitorConfig(actor={"sqlite_path": None}, detectors={"latency": {
        "method": "page_hinkley", "expected_run_time": "4000s", "reference_values": 500, "calibration_budget": 200_000}})
    ms.config = changed
    assert ms.detector("latency") is None
    assert ms.calibrations.info("latency", ms.detector_config("latency"))["status"] == "collecting"


def test_detector_calibration_failure_runs_with_configured_params():
    """A run time of fewer than ten updates cannot be calibrated: said, and the detector runs
    with its configured parameters."""
    cfg = MonitorConfig(actor={"sqlite_path": None}, detectors={"errors": {
        "method": "adwin", "params": {"delta": 0.01}, "expected_run_time": "5s", "reference_values": 50}})
    ms = ModelState(KEY, {"app": "app"}, cfg)
    for i in range(50):
        ms.detect("errors", 0.0 if i % 3 else 1.0, T0 + i)
    assert ms.calibrations.wait(timeout=30)
    assert ms.detector("errors").params == {"delta": 0.01}
    info = ms.calibrations.info("errors", ms.detector_config("errors"))
    assert info["status"] == "failed" and "too short" in info["error"] and "configured parameters" in info["text"]


def test_drift_settings_are_made_once_per_config():
    """The stats actor tests every cycle with drift_settings(config): with expected_run_time it
    used to copy the drift config each time, so every settings cache behind it missed."""
    from raywatch.aggregate.estimate_eval import drift_settings

    cfg = MonitorConfig(drift={"expected_run_time": "30d"}, windows={"evaluation_interval": 60})
    first = drift_settings(cfg)
    assert drift_settings(cfg) is first  # the same copy and options, so the caches behind hit
    assert first[0].alpha == pytest.approx(60 / (30 * 86400))
    other = MonitorConfig(drift={"expected_run_time": "1d"}, windows={"evaluation_interval": 60})
    assert drift_settings(other)[0].alpha == pytest.approx(60 / 86400)  # another config: its own
    plain = MonitorConfig()
    assert drift_settings(plain) == (plain.drift, None)


def test_rolling_view_extensions_are_made_plain_on_read(cbpe_profile):
    """The rolling view keeps its extension results as the tests made them (it is evaluated
    every cycle and read far less); status makes their plain data, equal to what a closed
    window's result holds, and never shows the private entry."""
    from raywatch.aggregate.estimate_eval import _DEFERRED, readable

    rng = np.random.default_rng(1)
    hub = AlertingHub(registry=CollectorRegistry(), background=False)
    cfg = config()
    c = StatsCore(cfg, alerting=hub)
    try:
        c.register_model(KEY, cfg, cbpe_profile.to_bytes())
        rows, y = world(1000, rng)
        assert c.ingest(batch(cbpe_profile, rows, 1, T0 + 2), now=T0 + 2) == "ok"
        for i, label in enumerate(y.tolist()):
            c.feedback(f"r1-{i}", label, now=T0 + 3)
        st = c.evaluate(now=T0 + 5)["models"][KEY]
        ms, ev = c.models[KEY], c._evaluator
        view, seconds = ev.rolling(ms, T0 + 5)
        deferred = ev.window_result(ms, view, seconds, parts=ev.rolling_parts(ms, T0 + 5))
        whole = ev.window_result(ms, view, seconds)  # a closed window's result: made at once
    finally:
        hub.close(timeout=5)
    assert _DEFERRED in deferred and _DEFERRED not in whole and _DEFERRED not in st["rolling"]
    shown = readable(deferred)
    assert _DEFERRED in deferred and shown is not deferred  # reading leaves the view as it is
    for key in ("estimation", "disagreement", "correlation", "reconstruction", "multivariate_drift"):
        assert shown[key] == whole[key], key
    assert shown["disagreement"]  # the labels joined: the estimate was judged
    assert st["rolling"]["estimation"] == shown["estimation"]
    json.dumps(shown)
    # the outlier shares stay in the results until read: then in the quality entries as a
    # closed window's, and one series a column with the same value
    kept = ms.view["rolling"]
    assert not any("outlier_share" in q for q in kept["quality"].values())
    assert readable(kept)["quality"] == whole["quality"] == st["quality"]
    outliers = {f: q["outlier_share"] for f, q in whole["quality"].items() if "outlier_share" in q}
    assert outliers and all("outlier_share_reference" in whole["quality"][f] for f in outliers)
    assert {s.labels["feature"]: s.value for s in ms.series if s.name == "outlier_share"} == outliers
    assert len([s for s in ms.series if s.name == "outlier_share"]) == len(outliers)


def test_a_cycle_evaluates_phase_by_phase_as_model_by_model(cbpe_profile, monkeypatch):
    """``Evaluator.evaluate_models`` runs every model's extension tests back to back (a phase
    of their own); each model's view and series equal ``evaluate_model``'s, a model that fails
    is counted and left out, and a failing extension phase keeps the columns' verdicts."""
    from raywatch.aggregate import estimate_eval
    from raywatch.aggregate.estimate_eval import readable
    from raywatch.drift.detect import attach_extensions, detect_drift

    rng = np.random.default_rng(3)
    keys = [f"app/M{i}" for i in range(3)]
    rows, _ = world(2000, np.random.default_rng(4))
    bare = Profile.fit(rows, seed=0)  # a model without extensions goes one by one, in its place
    everyone = keys[:1] + ["app/Bare"] + keys[1:]
    cores = [StatsCore(config()) for _ in range(2)]
    for c in cores:
        for key in everyone:
            c.register_model(key, config(), (bare if key == "app/Bare" else cbpe_profile).to_bytes())
    for i, key in enumerate(everyone):
        rows, _ = world(800, rng, shift=0.5 * i)
        prof = bare if key == "app/Bare" else cbpe_profile
        b = batch(prof, rows, 1, T0 + 2)
        b = ReplicaBatch(**{**b.__dict__, "deployment": key.split("/")[1]})
        for c in cores:
            assert c.ingest(b, now=T0 + 2) == "ok"
    one_by_one, phased = cores
    for ms in one_by_one.models.values():
        one_by_one._evaluator.evaluate_model(ms, T0 + 5)
    from raywatch.aggregate import evaluate

    monkeypatch.setattr(evaluate, "PHASE_MODELS", 2)  # three models: phases over two, then one
    failed = []
    done = phased._evaluator.evaluate_models(list(phased.models.values()), T0 + 5, lambda what, exc: failed.append(what))
    assert [ms.key for ms in done] == everyone and failed == []
    for key in everyone:
        a, b = one_by_one.models[key], phased.models[key]
        assert json.dumps(readable(a.view["rolling"]), sort_keys=True, default=str) == \
            json.dumps(readable(b.view["rolling"]), sort_keys=True, default=str)
        assert [(s.name, s.labels, s.value) for s in a.series] == [(s.name, s.labels, s.value) for s in b.series]
    # the columns alone, then the extensions: detect_drift's report
    summary = next(iter(phased.models[keys[2]].open.values())).summary
    whole = detect_drift(cbpe_profile, summary)
    split = attach_extensions(detect_drift(cbpe_profile, summary, extensions=False), cbpe_profile, summary)
    assert split.to_json() == whole.to_json()
    assert set(split.extensions) == set(whole.extensions) == {"performance", "correlation", "pca", "outliers"}
    # a model whose first phase fails is counted and left out; one whose extension tests fail keeps its columns
    broken, partial = phased.models[keys[0]], phased.models[keys[1]]
    broken.open = None  # closing its windows raises
    real = estimate_eval.attach

    def failing(ms, report, summary, **kwargs):
        if ms is partial:
            raise RuntimeError("extension tests failed")
        return real(ms, report, summary, **kwargs)

    monkeypatch.setattr(estimate_eval, "attach", failing)
    before = phased._failures.counts.get("drift", 0)
    done = phased._evaluator.evaluate_models(list(phased.models.values()), T0 + 6, lambda what, exc: failed.append(what))
    assert [ms.key for ms in done] == everyone[1:] and failed == ["evaluate"]
    assert phased._failures.counts.get("drift", 0) == before + 1
    roll = readable(partial.view["rolling"])
    assert roll["drift"] and "estimation" not in roll  # the columns were tested, the extensions not
    assert "estimation" in readable(phased.models[keys[2]].view["rolling"])
