"""``raywatch status`` and the status data with 500 models: a summary table, worst first, paged."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from raywatch.aggregate import StatsCore
from raywatch.aggregate.ranking import page, status_rows
from raywatch.cli import main
from raywatch.config import MonitorConfig

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

T0 = 1_000_000.0
N = 500
BAD = {7: "drift", 123: "errors", 321: "drift+errors", 499: "latency"}


@pytest.fixture(scope="module")
def fleet_status():
    from rw_batches import rows
    from raywatch.stats.profile import Profile

    prof = Profile.fit(rows(2000, 0, False), seed=0)
    core = StatsCore(MonitorConfig(windows={"length": 10.0, "rolling": 3, "grace": 0.0}, actor={"sqlite_path": None}))
    blob = prof.to_bytes()
    for m in range(N):
        key = f"app/model-{m:03d}"
        core.register_model(key, {"model": key}, blob)
        kind = BAD.get(m, "")
        lat = [0.9] * 60 if kind == "latency" else None
        core.ingest(make_batch(prof, n=60, seq=1, deployment=key.split("/")[1], ts=T0 + 1, drift="drift" in kind,
                               errors=30 if "errors" in kind else 0, latencies=lat, seed=m + 1), now=T0 + 2)
    core.evaluate(now=T0 + 3)
    return core.status()


def test_rows_are_worst_first_and_pages_cover_every_model_once(fleet_status):
    models = fleet_status["models"]
    assert len(models) == N
    rows = status_rows(models)
    order = [r["model"] for r in rows]
    assert order[:2] == ["app/model-321", "app/model-007"]  # dataset drift (and errors) first
    # then a larger share of drifted features (a few healthy models drift by chance at 60 rows), then
    # the error rate, then p95 latency
    clean = [r["model"] for r in rows if r["drifted_features"] == 0]
    assert clean[:2] == ["app/model-123", "app/model-499"]
    assert clean[2:] == sorted(clean[2:], key=lambda k: -models[k]["rolling"]["latency_p95_seconds"])
    seen = [r["model"] for p in range(1, 22) for r in page(rows, 25, p)["rows"]]
    assert len(seen) == N and set(seen) == set(models)
    assert page(rows, 25, 20)["pages"] == 20 and page(rows, 25, 21)["rows"] == []


def test_cli_status_prints_the_table_and_one_page_of_details(fleet_status, monkeypatch):
    import raywatch.actor.api as api
    import raywatch.cli.status as cli_status

    monkeypatch.setattr(cli_status, "connect", lambda *a, **k: None)  # no cluster: the status answer below
    monkeypatch.setattr(cli_status, "_controller_status", lambda *a, **k: None, raising=False)
    monkeypatch.setattr(api, "status", lambda model=None, **k: dict(fleet_status, actors=[{"name": "raywatch-stats"}]))
    res = CliRunner().invoke(main, ["status", "--limit", "10"])
    assert res.exit_code == 0, res.output
    out = click.unstyle(res.output).splitlines()
    assert out[0] == f"{N} models, worst first — page 1 of 50"
    assert out[1].split()[:2] == ["model", "alerts"]
    assert [line.split()[0] for line in out[2:4]] == ["app/model-321", "app/model-007"]
    assert out[12] == "(next: --page 2)"
    details = [line for line in out if line.startswith("app/model-") and "model=" in line]
    assert len(details) == 10 and details[0].startswith("app/model-321")
    res2 = CliRunner().invoke(main, ["status", "--limit", "10", "--page", "50"])
    out2 = click.unstyle(res2.output).splitlines()
    assert out2[0] == f"{N} models, worst first — page 50 of 50" and "(next:" not in res2.output
    assert len([line for line in out2 if line.startswith("app/model-") and "model=" in line]) == 10
    few = dict(fleet_status, actors=[{"name": "raywatch-stats"}], models=dict(list(fleet_status["models"].items())[:3]))
    monkeypatch.setattr(api, "status", lambda model=None, **k: few)
    plain = click.unstyle(CliRunner().invoke(main, ["status"]).output)
    assert "worst first" not in plain and plain.startswith("app/model-000")  # a few models: as before
