"""Realized performance during the rollout, read from the payload log without Ray: the
canary's labelled requests against the champion's (a guard), and the shadow's answers to
mirrored requests against the champion's answers to the same requests (figures only)."""

from __future__ import annotations

import asyncio

from raywatch.config import RemediationSettings
from raywatch.payload.log import PayloadLog
from raywatch.remediate.shell.controller import _Realized, _Settings

T0 = 1_700_000_000.0


def _settings(tmp_path, **guards):
    s = RemediationSettings.model_validate({
        "model": "scorer", "payload_log": {"path": str(tmp_path / "p"), "flush_interval": "1ms"},
        "remediation": {"retrain": {"function": "m:f"}, "validation": {"metric": "accuracy"},
                        "rollout": {"canary": {"guards": {"min_labelled_for_realized": 4, **guards}}}}})
    return _Settings("shop/Scorer", s)


def _log(st, rows, labels):
    log = PayloadLog(st.s.payload_log, clock=lambda: T0 + 100)
    log.add([{"model": "scorer", "ts": T0 + i, **r} for i, r in enumerate(rows)])
    log.add_labels("scorer", labels)
    log.flush()
    return log


def test_the_shadow_is_compared_with_the_champion_on_the_same_labelled_requests(tmp_path):
    st = _settings(tmp_path, max_realized_drop=0.01)
    rids = [f"r{i}" for i in range(8)]
    truth = [i % 2 for i in range(8)]
    champion = [{"request_id": r, "version": "v1", "prediction": 0} for r in rids]  # right half the time
    shadow = [{"request_id": r, "version": "v2", "prediction": y, "shadow": True} for r, y in zip(rids[:6], truth)]
    unmirrored = [{"request_id": "x9", "version": "v1", "prediction": 1}]  # labelled, but the shadow never saw it
    log = _log(st, champion + shadow + unmirrored, list(zip(rids + ["x9"], truth + [1])))
    realized = _Realized(log, st, {"candidate_version": "v2"}, T0 - 1, shadow=True)
    verdict, figs = asyncio.run(realized.check(final=True))
    assert verdict is None  # the shadow answers no user: figures, never a rollback
    assert (figs["candidate_rows"], figs["champion_rows"]) == (6, 6)  # the mirrored requests, both answers
    assert (figs["candidate"], figs["champion"]) == (1.0, 0.5)


def test_a_canary_worse_than_the_champion_on_its_labelled_requests_rolls_back(tmp_path):
    st = _settings(tmp_path, max_realized_drop=0.05)
    rows = [{"request_id": f"r{i}", "version": "v2" if i < 6 else "v1", "prediction": 1} for i in range(12)]
    labels = [(f"r{i}", 0 if i < 6 else 1) for i in range(12)]  # the canary wrong throughout, the champion right
    realized = _Realized(_log(st, rows, labels), st, {"candidate_version": "v2"}, T0 - 1)
    verdict, figs = asyncio.run(realized.check(final=True))
    assert verdict.action == "rollback" and (figs["candidate"], figs["champion"]) == (0.0, 1.0)
