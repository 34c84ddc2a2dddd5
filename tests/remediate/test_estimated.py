"""The canary's guard on estimated performance (CBPE), without Ray: each arm's scores from the
payload log, each calibrated by its own profile; a breach rolls back before any label came,
no estimate gives no verdict, and the figures reach the audit trail."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from raywatch.config import RemediationSettings
from raywatch.config.remediate import CanaryGuardsConfig, RemediationConfig
from raywatch.payload.log import PayloadLog
from raywatch.remediate.estimated import estimate_arm, estimated_verdict, estimator_of
from raywatch.remediate.rollout import Verdict
from raywatch.remediate.shell.controller import RemediationController, _Estimated, _Settings
from raywatch.stats.profile import Profile

T0 = 1_700_000_000.0
RNG = np.random.default_rng(7)


def _profile(n=4000):
    """A binary model whose score is calibrated: P(y=1 | score) = score."""
    s = RNG.random(n)
    y = (RNG.random(n) < s).astype(int)
    return Profile.fit({"x": RNG.normal(size=n), "score": s, "label": y}, seed=0,
                       performance={"target": "label", "scores": "score"})


PROFILE = _profile()


def _settings(tmp_path, **guards):
    s = RemediationSettings.model_validate({
        "model": "scorer", "payload_log": {"path": str(tmp_path / "p"), "flush_interval": "1ms"},
        "remediation": {"retrain": {"function": "m:f"}, "validation": {"metric": "accuracy"},
                        "rollout": {"canary": {"guards": {"min_rows_for_estimated": 100, **guards}}}},
        "profile": PROFILE.to_bytes()})
    return _Settings("shop/Scorer", s)


def _log(st, cand_scores, champ_scores):
    log = PayloadLog(st.s.payload_log, clock=lambda: T0 + 100)
    rows = [{"request_id": f"c{i}", "version": "v2", "prediction": int(s >= 0.5), "score": float(s)}
            for i, s in enumerate(cand_scores)]
    rows += [{"request_id": f"h{i}", "version": "v1", "prediction": int(s >= 0.5), "score": float(s)}
             for i, s in enumerate(champ_scores)]
    rows += [{"request_id": f"m{i}", "version": "v2", "prediction": 1, "score": 0.5, "shadow": True} for i in range(50)]
    log.add([{"model": "scorer", "ts": T0 + i * 0.01, **r} for i, r in enumerate(rows)])
    log.flush()
    return log


SURE = RNG.choice([0.03, 0.97], 300)  # confident, calibrated answers: estimated accuracy ~0.97
UNSURE = RNG.uniform(0.4, 0.6, 300)  # answers near the threshold: estimated accuracy ~0.55


def test_a_canary_whose_estimate_drops_rolls_back_before_any_label(tmp_path):
    st = _settings(tmp_path, max_estimated_drop=0.05)
    check = _Estimated(_log(st, UNSURE, SURE), st, {"candidate_version": "v2"}, T0 - 1, PROFILE.to_bytes())
    verdict, figs = asyncio.run(check.check(final=True))
    assert verdict.action == "rollback" and "estimated accuracy" in verdict.reason and "no labels yet" in verdict.reason
    assert (figs["candidate_rows"], figs["champion_rows"]) == (300, 300)  # the shadow's mirrored answers left out
    assert figs["candidate"] < 0.6 < 0.9 < figs["champion"]
    assert figs["drop"] > figs["band"] > 0 and figs["metric"] == "accuracy"


def test_an_equal_canary_is_not_rolled_back(tmp_path):
    st = _settings(tmp_path, max_estimated_drop=0.05)
    check = _Estimated(_log(st, SURE[:150], SURE[150:]), st, {"candidate_version": "v2"}, T0 - 1, PROFILE)
    verdict, figs = asyncio.run(check.check(final=True))
    assert verdict is None and abs(figs["drop"]) < 0.05


def test_no_estimator_in_the_candidates_profile_gives_no_verdict_and_says_why(tmp_path):
    st = _settings(tmp_path, max_estimated_drop=0.05)
    plain = Profile.fit({"x": RNG.normal(size=500)}, seed=0)  # trained without scores: nothing to calibrate with
    for prof in (None, plain):
        check = _Estimated(_log(st, UNSURE, SURE), st, {"candidate_version": "v2"}, T0 - 1, prof)
        verdict, figs = asyncio.run(check.check(final=True))
        assert verdict is None and figs["candidate"] is None and figs["champion"] > 0.9
        assert "candidate" in figs["no_estimate"] and "champion" not in figs["no_estimate"]


def test_too_few_rows_or_a_drop_within_the_noise_gives_no_verdict():
    est, _ = estimator_of(PROFILE)
    g = CanaryGuardsConfig(max_estimated_drop=0.01, min_rows_for_estimated=100)
    few = estimated_verdict(g, "accuracy", estimate_arm(est, UNSURE[:20]), estimate_arm(est, SURE))
    assert few[0] is None and few[1]["candidate_rows"] == 20
    # 0.97 against 0.90 on 120 rows each: beyond max_estimated_drop, not beyond 3 sampling errors
    rng = np.random.default_rng(1)
    a = estimate_arm(est, rng.choice([0.03, 0.97], 120))
    b = estimate_arm(est, rng.choice([0.1, 0.9], 120))
    v, figs = estimated_verdict(g, "accuracy", b, a)
    assert v is None and figs["drop"] > g.max_estimated_drop and figs["drop"] < figs["band"]
    off = estimated_verdict(CanaryGuardsConfig(), "accuracy", estimate_arm(est, UNSURE), estimate_arm(est, SURE))
    assert off[0] is None and off[1]["drop"] is None  # the guard off: figures only


def test_the_metric_must_be_estimable():
    with pytest.raises(ValueError, match="estimated_metric to one of accuracy"):
        RemediationConfig.model_validate({"retrain": {"function": "m:f"}, "validation": {"metric": "log_loss"},
                                          "rollout": {"canary": {"guards": {"max_estimated_drop": 0.05}}}})
    cfg = RemediationConfig.model_validate({"retrain": {"function": "m:f"}, "validation": {"metric": "log_loss"},
                                            "rollout": {"canary": {"guards": {"max_estimated_drop": 0.05,
                                                                              "estimated_metric": "roc_auc"}}}})
    assert cfg.estimated_metric() == "roc_auc"
    with pytest.raises(ValueError, match="expected one of"):
        CanaryGuardsConfig(estimated_metric="mae")


def test_the_breach_and_its_figures_are_in_the_audit_trail(tmp_path):
    st = _settings(tmp_path, max_estimated_drop=0.05)
    ctl = RemediationController(str(tmp_path / "own.sqlite"))
    check = _Estimated(_log(st, UNSURE, SURE), st, {"candidate_version": "v2"}, T0 - 1, PROFILE.to_bytes())

    async def go():
        for kind in ("triggered", "retrain_started", "candidate", "shadow_started", "canary_started"):
            await ctl._record(st.key, "d1", kind)
        return await ctl._phase("d1", st, 1, lambda arms, elapsed: Verdict("wait", "no requests yet"),
                                "canary_figures", None, check)

    ok, reason, _ = asyncio.run(go())
    assert not ok and reason.startswith("estimated accuracy")
    ev = ctl.audit.events(st.key)[-1]
    assert ev.kind == "canary_figures" and ev.summary == reason
    figs = ev.evidence["estimated"]
    assert figs["candidate"] < 0.6 and figs["champion"] > 0.9 and figs["drop"] > figs["band"]


def test_the_canary_phase_rolls_back_on_the_estimate_alone(tmp_path):
    """Config to audit trail through the controller's canary phase: no labels, no router
    figures beyond the champion's, the candidate's estimate far below → rolled back."""
    import time

    from raywatch.remediate.context import Candidate

    st = _settings(tmp_path, max_estimated_drop=0.05)
    st.payload = PayloadLog(st.s.payload_log)
    soon = time.time() + 30  # answered after the canary started
    rows = [{"request_id": f"c{i}", "version": "v2", "prediction": int(s >= 0.5), "score": float(s)}
            for i, s in enumerate(UNSURE)]
    rows += [{"request_id": f"h{i}", "version": "v1", "prediction": int(s >= 0.5), "score": float(s)}
             for i, s in enumerate(SURE)]
    st.payload.add([{"model": "scorer", "ts": soon + i * 0.01, **r} for i, r in enumerate(rows)])
    st.payload.flush()
    ctl = RemediationController(str(tmp_path / "own.sqlite"))
    cand = Candidate("s3://m/v2", "v2", PROFILE.to_bytes())

    async def go():
        for kind in ("triggered", "retrain_started", "candidate", "shadow_started"):
            await ctl._record(st.key, "d1", kind)
        base = {"model": "scorer", "champion_version": "v1", "candidate_version": "v2"}
        return await asyncio.wait_for(ctl._canary("d1", st, base, cand), 60)  # without the guard: 15 min of waiting

    assert asyncio.run(go()) is False
    evs = ctl.audit.events(st.key)
    assert [e.kind for e in evs][-3:] == ["canary_started", "canary_figures", "rolled_back"]
    assert evs[-3].evidence["guards"]["max_estimated_drop"] == 0.05
    assert evs[-1].summary.startswith("canary: estimated accuracy") and evs[-1].state == "rolled_back"
    assert evs[-2].evidence["estimated"]["candidate_rows"] == 300
