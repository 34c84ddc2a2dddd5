"""The README's blocks that need no Ray cluster, run as a user would: Python blocks executed,
YAML blocks loaded with raywatch's loaders, shell commands run, command outputs compared.
(The blocks that need a cluster are in ``test_tutorial``; those another test covers say so
in their mark, see ``readme_blocks``.)"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from readme_blocks import ROOT, of_kind  # noqa: E402

from raywatch.config import ConfigError, env_references, load_config  # noqa: E402


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch directory that looks like the checkout: copies of configs/ and deployments/."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(ROOT / "deployments", tmp_path / "deployments", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _ids(b):
    return b.where


@pytest.mark.parametrize("b", of_kind("python", without=("tutorial", "file", "covered-by")), ids=_ids)
def test_python_block_runs(b, workdir):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(b.text, b.where, "exec"), {"__name__": "__readme__"})
    expected = b.expected_prints()
    if expected:
        assert out.getvalue().splitlines() == expected


@pytest.mark.parametrize("b", of_kind("python", "file"), ids=_ids)
def test_python_file_block_compiles(b):
    """The tutorial runs them (test_tutorial); here, at least, they are Python."""
    compile(b.text, b.opts["file"], "exec")


@pytest.mark.parametrize("b", of_kind("yaml", "monitor"), ids=_ids)
def test_monitor_yaml_block_loads(b, tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text(b.text)
    unset: set = set()
    cfg = load_config(path, unset_env=unset)  # secrets are ${ENV} references: their names are collected
    assert unset == set(env_references(b.text))
    assert cfg.model_dump()  # a whole MonitorConfig


@pytest.mark.parametrize("b", of_kind("yaml", "serve"), ids=_ids)
def test_serve_yaml_block_loads(b, tmp_path):
    from raywatch.serve.deploy import load_serve_config

    shutil.copy(ROOT / "configs" / "monitor.yaml", tmp_path / "monitor.yaml")  # what `monitor: monitor.yaml` names
    path = tmp_path / "serve.yaml"
    path.write_text(b.text)
    schema, notes = load_serve_config(path)
    assert schema.applications
    if "excerpt-of" in b.opts:
        whole = yaml.safe_load((ROOT / b.opts["excerpt-of"]).read_text())["applications"][0]
        part = yaml.safe_load(b.text)["applications"][0]
        assert {k: whole[k] for k in part} == part, f"{b.where} is not an excerpt of {b.opts['excerpt-of']}"


def test_a_wrong_yaml_block_would_fail(tmp_path):
    """The negative control of the loaders above: a misspelled field fails them."""
    from raywatch.serve.deploy import load_serve_config

    path = tmp_path / "m.yaml"
    path.write_text("alerting:\n  rules:\n    - {name: X, expr: 'drift_scroe > 1'}\n")
    with pytest.raises(ConfigError):
        load_config(path)
    path.write_text("applications:\n  - name: a\n    import_path: raywatch.serve:app\n    args: {application: {import_path: x:y}, monitor: {windows: {length: soon}}}\n")
    with pytest.raises(ConfigError):
        load_serve_config(path)


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
               RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.mark.parametrize("b", of_kind("output", "of"), ids=_ids)
def test_output_block_is_what_the_command_prints(b):
    res = subprocess.run(["bash", "-c", b.opts["of"] + " 2>&1"], capture_output=True, text=True, cwd=str(ROOT), env=_env(), timeout=120)
    assert res.stdout == b.text.split("\n", 1)[1], res.stdout  # the block's first line is the command


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready after {timeout:g} s")
        time.sleep(0.3)


def _server(line: str, require_binary, workdir: Path):
    """A server command of a shell block (``prometheus …``): started as written (on a free port
    when the written one is taken), checked ready, stopped. Returns (process, base URL)."""
    words = line.split()
    require_binary(words[0])
    listen = next((w.split("=", 1)[1] for w in words if w.startswith("--web.listen-address=")), "127.0.0.1:9090")
    host, port = listen.rsplit(":", 1)
    if not _free(int(port)):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        words = [w if not w.startswith("--web.listen-address=") else f"--web.listen-address={host}:{port}" for w in words]
    words.append(f"--storage.tsdb.path={workdir / 'prometheus-data'}")  # not the default ./data of the checkout
    proc = subprocess.Popen(words, cwd=str(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://{host}:{port}"
    try:
        _wait_ready(base + "/-/ready")
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[1][-2000:]) from None
    return proc, base


@pytest.mark.integration
@pytest.mark.parametrize("b", of_kind("shell", without=("tutorial", "covered-by")), ids=_ids)
def test_shell_block_runs(b, workdir, require_binary):
    """Each command as written, from a copy of the checkout's configs/: the exports regenerate
    the committed files exactly; Prometheus starts with the scrape config and loads the rules."""
    servers = []
    try:
        for raw in b.text.splitlines():
            line = raw.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("prometheus "):
                proc, base = _server(line, require_binary, workdir)
                servers.append(proc)
                with urllib.request.urlopen(base + "/api/v1/rules", timeout=10) as r:
                    rules = {x["name"] for g in __import__("json").load(r)["data"]["groups"] for x in g["rules"]}
                names = {r["name"] for r in yaml.safe_load((ROOT / "configs" / "monitor-sinks.yaml").read_text())["alerting"]["rules"]}
                assert rules == names | {"ReplicaOutlier"}  # the default rule of multi-replica deployments
                continue
            res = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=str(workdir), env=_env(), timeout=120)
            assert res.returncode == 0, f"{b.where}: `{line}` failed:\n{res.stdout}\n{res.stderr}"
            m = re.search(r"-o (\S+)", line)
            if m:
                assert (workdir / m.group(1)).read_text() == (ROOT / m.group(1)).read_text(), f"{m.group(1)} differs from the committed file"
    finally:
        for p in servers:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
