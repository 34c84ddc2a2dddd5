"""The README's tutorial, run as written on a fresh machine: its ``tutorial`` blocks in order
(``readme_blocks``), each as a user types it — shell blocks with bash, Python blocks as
scripts — against the real Ray cluster the tutorial starts with ``ray start --head``.

"A fresh machine": ``HOME`` is an empty folder (no Ray token, no ``~/.raywatch`` state) and
``RAY_TMPDIR`` a folder of its own, so the cluster neither finds nor disturbs any other Ray
on this machine. The cluster is stopped afterwards whatever happens.

Also checked here, on that cluster (Ray 2.60 token authentication):

* ``serve status`` needs ``RAY_AUTH_MODE=token`` (without it: "Missing authentication token"),
  which is why the tutorial exports it;
* raywatch's commands print neither Ray's "Token authentication is enabled…" notice (which a
  bare ``ray.init`` prints there) nor the thread notice of their connection timeout.

The demo and the README's test command are run by tests/cli/test_demo.py and by CI (.ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from readme_blocks import ROOT, number_pattern, readme_blocks  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STEP_TIMEOUT = 300


class Tutorial:
    """A shell session of the tutorial: its folder, its environment (``export``s carry from one
    block to the next, as in one terminal) and the output of every command run."""

    def __init__(self, root: Path):
        self.dir = root / "tutorial"
        self.dir.mkdir()
        home = root / "home"
        home.mkdir()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="rwt-", dir="/tmp"))  # short: Ray's socket paths
        self.state = root / "env.sh"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(HOME=str(home), RAY_TMPDIR=str(self.tmpdir), RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
                   PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
                   PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        self.env = env
        self.log = []

    def environ(self, **changes) -> dict:
        """The session's environment now (after the blocks' ``export``s), with ``changes``
        (a value of None removes the variable)."""
        env = dict(self.env)
        if self.state.exists():
            out = subprocess.run(["bash", "-c", f". {self.state}; env -0"], capture_output=True, env=self.env, check=True).stdout
            env = dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)
        for k, v in changes.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def shell(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        wrapped = f"set -e\n[ -f {self.state} ] && . {self.state}\n{script}\nexport -p > {self.state}\n"
        res = subprocess.run(["bash", "-c", wrapped], capture_output=True, text=True, cwd=str(self.dir), env=self.env,
                             timeout=STEP_TIMEOUT)
        self.log.append((script, res))
        if check:
            assert res.returncode == 0, f"`{script.strip()}` failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        return res

    def python(self, code: str, **env_changes) -> subprocess.CompletedProcess:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(self.dir),
                             env=self.environ(**env_changes), timeout=STEP_TIMEOUT)
        self.log.append((code, res))
        assert res.returncode == 0, f"failed:\n{code}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        return res

    def run(self, args, **env_changes) -> subprocess.CompletedProcess:
        res = subprocess.run(args, capture_output=True, text=True, cwd=str(self.dir), env=self.environ(**env_changes),
                             timeout=STEP_TIMEOUT)
        self.log.append((" ".join(args), res))
        return res

    def processes(self):
        """The processes of the tutorial's own cluster: each names its RAY_TMPDIR on its command line."""
        import psutil

        mine = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if str(self.tmpdir) in " ".join(proc.info["cmdline"] or ()):
                    mine.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return mine

    def stop_own_cluster(self) -> None:
        """Stop the tutorial's cluster only (``ray stop`` stops every Ray cluster of the user on
        the machine, the test session's included): its processes, by their ids."""
        import psutil

        procs = self.processes()
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=20)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)

    def stop(self) -> None:
        self.stop_own_cluster()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _other_cluster_in_this_process() -> bool:
    """Whether this test session runs its own Ray cluster (tests/conftest.py's ``ray_cluster``)."""
    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized()


def run_as_written(script: str, tutorial: "Tutorial") -> subprocess.CompletedProcess:
    """Run a shell block as written; with the test session's own cluster up, its ``ray stop``
    (which would stop that one too) stops the tutorial's cluster only."""
    lines = script.splitlines()
    stop = [i for i, line in enumerate(lines) if line.split("#")[0].strip() == "ray stop"]
    if not stop or not _other_cluster_in_this_process():
        return tutorial.shell(script)
    before, after = "\n".join(lines[: stop[0]]), "\n".join(lines[stop[0] + 1 :])
    res = tutorial.shell(before) if before.strip() else None
    tutorial.stop_own_cluster()
    return tutorial.shell(after) if after.strip() else res


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    if _other_cluster_in_this_process():
        from ray import serve

        serve.shutdown()  # its HTTP proxy holds 127.0.0.1:8000, the port the tutorial's app answers on
    t = Tutorial(tmp_path_factory.mktemp("readme"))
    try:
        yield t
    finally:
        t.stop()


def _steps():
    return [b for b in readme_blocks() if "tutorial" in b.flags or "file" in b.opts or "of-tutorial" in b.opts]


def test_the_tutorial_runs_as_written(tutorial):
    last_output = {}
    for b in _steps():
        if "file" in b.opts:
            (tutorial.dir / b.opts["file"]).write_text(b.text)
        elif b.kind == "python":
            res = tutorial.python(b.text)
            expected = b.expected_prints()
            if expected:
                assert res.stdout.splitlines() == expected, f"{b.where} printed:\n{res.stdout}\n{res.stderr[-2000:]}"
        elif b.kind == "shell":
            until = b.opts.get("until")
            deadline = time.monotonic() + 120
            while True:
                res = run_as_written(b.text, tutorial)
                if until is None or until in res.stdout:
                    break
                assert time.monotonic() < deadline, f"{b.where}: no {until!r} within 120 s; last output:\n{res.stdout}\n{res.stderr}"
                time.sleep(2)
            for line in b.text.splitlines():
                cmd = line.split("#")[0].strip()
                if cmd:
                    last_output[cmd] = res
        elif b.kind == "output":
            cmd = b.opts["of-tutorial"]
            assert cmd in last_output, f"{b.where}: the tutorial runs no `{cmd}` before it"
            real = last_output[cmd].stdout.splitlines()
            for line in b.text.splitlines():
                assert any(re.fullmatch(number_pattern(line), r) for r in real), \
                    f"{b.where}: no line like\n  {line}\nin the output of `{cmd}`:\n" + "\n".join(real)
    # what the tutorial left behind
    assert (tutorial.dir / "fraud.profile").exists() and (tutorial.dir / "report.html").exists()
    assert (Path(tutorial.env["HOME"]) / ".ray" / "auth_token").exists()  # the token the tutorial made
    assert (Path(tutorial.env["HOME"]) / ".raywatch" / "raywatch-stats.sqlite").exists()  # where the README says state lives
    assert tutorial.processes() == []  # stopped


def test_token_authentication_as_the_readme_says(tutorial):
    """On a cluster started as the tutorial does (it is stopped by the end of the tutorial, so
    start it the same way again): ``serve status`` fails without ``RAY_AUTH_MODE=token`` and
    works with it; raywatch's own command stays quiet about tokens and threads."""
    start = [b for b in readme_blocks() if "tutorial" in b.flags and "ray start" in b.text][0]
    tutorial.shell(start.text)
    try:
        without = tutorial.run(["serve", "status"], RAY_AUTH_MODE=None)
        assert without.returncode != 0 and "Missing authentication token" in without.stderr + without.stdout
        with_token = tutorial.run(["serve", "status"])
        assert with_token.returncode == 0 and "FraudModel" in with_token.stdout
        # a plain driver without RAY_AUTH_MODE finds the token and says so (the notice raywatch keeps out)
        bare = tutorial.run([sys.executable, "-c", "import ray; ray.init(address='auto')"], RAY_AUTH_MODE=None)
        assert "Token authentication is enabled" in bare.stderr + bare.stdout
        quiet = tutorial.run(["raywatch", "status"], RAY_AUTH_MODE=None)
        assert quiet.returncode == 0, quiet.stderr
        assert "default/FraudModel" in quiet.stdout
        assert "Token authentication" not in quiet.stderr + quiet.stdout
        assert "SIGTERM handler" not in quiet.stderr + quiet.stdout
    finally:
        tutorial.shell("serve shutdown -y", check=False)
        tutorial.stop_own_cluster()
