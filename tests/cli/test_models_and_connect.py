"""``--model`` means the same in every command and never matches nothing silently; a wrong
``--address`` never hangs; Ray's notices stay out of raywatch's output; ``demo --duration``
is honoured or refused; the top-level help shows whole summaries.

Without a Ray cluster: the stats actor's answers come from a real :class:`StatsCore` (its
SQLite file for ``report --sqlite``), and the query API is replaced by that core's answers
for the live paths. The commands that must give up on an address run as subprocesses (they
leave the process at once when Ray does not answer).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from raywatch.aggregate import StatsCore, Store
from raywatch.cli import main
from raywatch.config import MonitorConfig
from raywatch.stats.profile import Profile

from rw_batches import make_batch, reference

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_000_000.0


@pytest.fixture(scope="module")
def profile():
    return Profile.fit(reference(), seed=0)


@pytest.fixture
def core(profile, tmp_path):
    """Two models: ``shop/Fraud`` (model name ``fraud``) and ``shop/Approval`` (``approval``),
    with history in a SQLite file."""
    cfg = MonitorConfig(windows={"length": 10.0, "rolling": 3, "grace": 0.0, "evaluation_interval": 1.0},
                        actor={"sqlite_path": None})
    c = StatsCore(cfg, Store(str(tmp_path / "stats.sqlite")))
    for dep, name in (("Fraud", "fraud"), ("Approval", "approval")):
        c.register_model(f"shop/{dep}", {"model": name, "version": "v1"}, profile.to_bytes())
        for k in range(3):
            b = make_batch(profile, n=50, seq=k + 1, app="shop", deployment=dep, ts=T0 + 10 * k + 1)
            b.model = name
            c.ingest(b, now=T0 + 10 * k + 1)
    c.evaluate(now=T0 + 25)
    c.checkpoint(now=T0 + 25)
    return c


@pytest.fixture
def live(core, monkeypatch):
    """``status``/``report`` against ``core`` as if a stats actor answered (no Ray)."""
    import raywatch.actor.api as api
    import raywatch.cli.report as report_cmd
    import raywatch.cli.status as status_cmd

    monkeypatch.setattr(status_cmd, "connect", lambda *a, **k: None)
    monkeypatch.setattr(report_cmd, "connect", lambda *a, **k: None)

    def status(model=None, *, config=None, timeout=30.0):
        st = core.status(model)
        return {"models": st["models"], "actors": [st["actor"]]}

    monkeypatch.setattr(api, "status", status)
    monkeypatch.setattr(api, "history", lambda model=None, since=None, *, config=None, timeout=60.0: core.history(model, since))
    return core


# ------------------------------------------------------------------------------ --model

def test_status_model_accepts_a_key_or_a_name(live):
    for name in ("shop/Fraud", "fraud"):
        res = CliRunner().invoke(main, ["status", "--model", name])
        assert res.exit_code == 0, res.output
        assert "shop/Fraud" in res.output and "shop/Approval" not in res.output


def test_status_model_that_matches_nothing_fails_and_lists_the_known_models(live):
    res = CliRunner().invoke(main, ["status", "--model", "nope"])
    assert res.exit_code == 1
    assert "no model 'nope'" in res.output
    assert "shop/Approval (model approval)" in res.output and "shop/Fraud (model fraud)" in res.output


@pytest.mark.parametrize("source", ["live", "sqlite"])
def test_report_model_accepts_what_status_accepts(live, tmp_path, source):
    extra = ["--sqlite", live.store.path] if source == "sqlite" else []
    for name in ("shop/Fraud", "fraud"):
        out = tmp_path / f"{source}-{name.replace('/', '_')}.html"
        res = CliRunner().invoke(main, ["report", "--model", name, "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
        assert "(1 model(s), 2 window(s)" in res.output
        page = out.read_text()
        assert "shop/Fraud" in page and "shop/Approval" not in page


@pytest.mark.parametrize("source", ["live", "sqlite"])
def test_report_model_that_matches_nothing_fails_and_lists_the_known_models(live, tmp_path, source):
    extra = ["--sqlite", live.store.path] if source == "sqlite" else []
    out = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "--model", "nope", "-o", str(out), *extra])
    assert res.exit_code == 1
    assert "no model 'nope'" in res.output and "shop/Fraud (model fraud)" in res.output
    assert not out.exists()


# ------------------------------------------------------------------------------ --address

def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "raywatch.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=str(ROOT))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_an_address_where_nothing_listens_fails_at_once_with_the_advice():
    port = _closed_port()
    t0 = time.monotonic()
    res = _cli("status", "--address", f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 30
    assert res.returncode == 1
    assert f"cannot connect to a Ray cluster at '127.0.0.1:{port}'" in res.stderr
    assert "ray start --head" in res.stderr
    assert "--sqlite" not in res.stderr.replace("raywatch report --sqlite", "")  # status has no --sqlite
    res = _cli("report", "--address", f"127.0.0.1:{port}")
    assert res.returncode == 1 and "--sqlite" in res.stderr


class _SilentListener:
    """A TCP port that accepts connections and never answers (what Ray's client waits on forever)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("command", [["status"], ["report", "-o", "/dev/null"], ["deploy", "configs/serve-fraud.yaml"],
                                     ["reset", "--model", "fraud", "--yes"]])
def test_an_address_that_never_answers_gives_up_after_the_timeout(command):
    silent = _SilentListener()
    try:
        t0 = time.monotonic()
        flag = "--connect-timeout" if command[0] == "deploy" else "--timeout"
        res = _cli(*command, "--address", f"127.0.0.1:{silent.port}", flag, "3", timeout=90)
        took = time.monotonic() - t0
    finally:
        silent.close()
    assert res.returncode == 1, res.stderr
    assert f"cannot connect to a Ray cluster at '127.0.0.1:{silent.port}': no answer within 3 s" in res.stderr
    assert took < 45, took  # the interpreter's start and Ray's import included


def test_connect_timeout_defaults_to_about_15_seconds():
    for cmd in (["status"], ["report"], ["reset"]):
        out = CliRunner().invoke(main, [*cmd, "--help"]).output
        assert "--timeout" in out and "15" in out, out
    assert "--connect-timeout" in CliRunner().invoke(main, ["deploy", "--help"]).output


def test_cli_quiets_rays_token_notice():
    """Ray 2.60 logs "Token authentication is enabled…" on every connection; the commands keep
    it out of their output (its errors still show)."""
    from raywatch.cli.common import RAY_NOTICES, quiet_ray_notices

    quiet_ray_notices()
    for name in RAY_NOTICES:
        log = logging.getLogger(name)
        assert not log.isEnabledFor(logging.WARNING) and log.isEnabledFor(logging.ERROR)
    from ray._private.authentication import authentication_token_setup as setup

    assert setup.logger.name in RAY_NOTICES  # the logger that says it


# ------------------------------------------------------------------------------ small frictions

def test_demo_refuses_a_duration_it_cannot_honour():
    res = CliRunner().invoke(main, ["demo", "--duration", "10"])
    assert res.exit_code == 2
    assert "--duration" in res.output and "at least 30" in res.output


def test_top_level_help_shows_whole_summaries():
    out = CliRunner().invoke(main, ["--help"]).output
    assert "…" not in out and "..." not in out.split("Commands:")[1]
    for line in out.split("Commands:")[1].strip().splitlines():
        assert line.rstrip().endswith("."), line


def test_reset_forgets_a_model_in_a_state_file_without_a_cluster(tmp_path):
    from click.testing import CliRunner

    from raywatch.aggregate import StatsCore, Store
    from raywatch.cli import main
    from raywatch.config import MonitorConfig

    path = tmp_path / "stats.sqlite"
    core = StatsCore(MonitorConfig(actor={"sqlite_path": None}), Store(str(path)))
    for key in ("shop/Fraud", "shop/Churn"):
        core.register_model(key, {"model": key.split("/")[1].lower()})
    core.store.close()
    runner = CliRunner()
    res = runner.invoke(main, ["reset", "--model", "fraud", "--sqlite", str(path), "--yes"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"reset shop/Fraud in {path}: ")
    left = Store(str(path))
    try:
        assert sorted(left.load_models()) == ["shop/Churn"]
    finally:
        left.close()
    res = runner.invoke(main, ["reset", "--model", "fraud", "--sqlite", str(path), "--yes"])
    assert res.exit_code == 1 and "holds no model 'fraud'" in res.output
