"""The remediation loop on a real Ray cluster and Serve: retrain as a Ray task on the logged,
labelled traffic, the validation gate, shadow, canary, promotion or rollback through Serve's
declarative config, the audit trail and the notifications — and what users saw meanwhile."""

from __future__ import annotations

import time
import uuid

import pytest
from rw_remediate_support import Receiver, Traffic, alert, app_config, deploy, label_logged, median, p, settings
from rw_test_support import serve_http_port, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(240)]

NS = "raywatch-tests"


@pytest.fixture
def loop(serve_clean, tmp_path):
    """A remediable app deployed from a serve config, its own controller, a webhook receiver."""
    import ray

    from deployments.remediable import initial_artifact
    from raywatch.payload.log import PayloadLog
    from raywatch.config.remediate import PayloadLogConfig
    from raywatch.remediate.shell import controller as ctl

    serve_http_port(serve_clean)
    name = f"rw-rem-{uuid.uuid4().hex[:6]}"
    app = f"rem{uuid.uuid4().hex[:6]}"
    payload_dir = str(tmp_path / "payload")
    v1 = initial_artifact()
    handle = ctl.get_or_create(str(tmp_path / "audit.sqlite"), name=name, namespace=NS)
    rec = Receiver()

    class Loop:
        pass

    lp = Loop()
    lp.app, lp.key, lp.ctl, lp.receiver, lp.payload_dir, lp.v1 = app, f"{app}/Scorer", handle, rec, payload_dir, v1
    lp.log = PayloadLog(PayloadLogConfig(path=payload_dir))

    def start(**remediation):
        ray.get(handle.register.remote(lp.key, settings(payload_dir, rec.url, **remediation)))
        deploy([app_config(app, v1, payload_dir, name, NS)])

    def seed(n=400):
        """Drifted traffic, logged by the router, then labelled."""
        t = Traffic(app, rate=200, concurrency=8).start()
        wait_until(lambda: t.count() >= n, timeout=60, what=f"{n} requests")
        t.stop()
        return label_logged(lp.log, "Scorer", min_rows=n)

    def events():
        return ray.get(handle.events.remote(lp.key))

    def user_config():
        from raywatch.remediate.shell import serving

        return serving.current_user_config(app, "Scorer")

    lp.start, lp.seed, lp.events, lp.user_config = start, seed, events, user_config
    yield lp
    rec.close()
    ray.kill(handle)
    ctl.forget(name, NS)


def kinds(events):
    return [e["kind"] for e in events]


def test_the_whole_loop_promotes_a_better_model_without_failing_a_request(loop):
    import ray

    loop.start()
    labelled = loop.seed()
    assert labelled >= 400
    traffic = Traffic(loop.app, rate=60).start()
    try:
        t_alert = time.monotonic()
        out = ray.get(loop.ctl.notify.remote(alert(loop.app)))
        (d,) = out["started"]
        state = ray.get(loop.ctl.wait.remote(d, 180))
        t_done = time.monotonic()
        time.sleep(0)  # (the traffic keeps running through the promotion)
    finally:
        traffic.stop()
    ev = loop.events()
    assert state == "promoted", [(e["kind"], e["summary"]) for e in ev]
    assert kinds(ev) == ["triggered", "data_window", "retrain_started", "candidate", "validation_passed",
                         "shadow_started", "shadow_figures", "canary_started", "canary_figures", "promoted"]
    by = {e["kind"]: e for e in ev}
    g = by["validation_passed"]["evidence"]["gate"]
    assert g["candidate"] > g["champion"] + 0.05 and g["low"] > 0
    assert by["validation_passed"]["evidence"]["residual_drift"]["passed"]
    assert by["shadow_figures"]["evidence"]["figures"]["shadow"]["requests"] >= 20
    assert by["canary_figures"]["evidence"]["figures"]["candidate"]["requests"] >= 10
    promoted = by["promoted"]["evidence"]
    assert loop.user_config()["version"] == "v2" == promoted["version"]
    from raywatch.remediate.shell import compat

    assert f"{loop.app}-rw-candidate" not in compat.app_configs()
    rollout_start = by["shadow_started"]["ts"]
    failed = traffic.failed()
    print(f"\nremediation: alert→promotion {t_done - t_alert:.1f}s (controller: {promoted['seconds_since_trigger']:.1f}s), "
          f"{traffic.count()} requests during the loop, {len(failed)} failed")
    assert failed == [], ([(round(f[4] - by["triggered"]["ts"], 2), f[3][:60]) for f in failed[:4]],
                          [(e["kind"], round(e["ts"] - by["triggered"]["ts"], 2)) for e in ev])
    assert traffic.count() > 50 and rollout_start
    assert set(loop.receiver.steps()) >= {"triggered", "candidate", "validation_passed", "shadow_started",
                                          "canary_started", "promoted"}
