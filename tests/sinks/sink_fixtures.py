"""Fixtures for the sink tests, imported by the test modules that use them (a conftest.py here
would clash with other test folders' conftest modules under --doctest-modules)."""

import pytest

from alert_receivers import DogStatsDReceiver, HTTPReceiver, SMTPServer, check_am_webhook, make_cert  # noqa: F401


@pytest.fixture
def hook():
    """A receiver that checks Alertmanager's webhook payload on ``/hook...`` paths."""
    r = HTTPReceiver(validators={"/hook": check_am_webhook})
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def receiver():
    r = HTTPReceiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def statsd():
    r = DogStatsDReceiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    import importlib.util
    import shutil

    if shutil.which("openssl") is None and importlib.util.find_spec("cryptography") is None:
        pytest.skip("neither the openssl binary nor the cryptography package is there to make a test certificate")
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def alertmanager(require_binary, tmp_path):
    """Start a real Alertmanager on 127.0.0.1 (gossip off, temp storage); always stopped.

    Yields a function ``start(config_yaml) -> base_url``.
    """
    import os
    import socket
    import subprocess
    import time
    import urllib.request

    binary = require_binary("alertmanager", "prometheus-alertmanager")
    procs = []

    def start(config_yaml: str) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = tmp_path / "alertmanager.yml"
        cfg.write_text(config_yaml)
        log = open(tmp_path / "alertmanager.log", "wb")
        proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {(tmp_path / 'alertmanager.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return url
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("alertmanager did not become ready in 20 s")

    try:
        yield start
    finally:
        for proc, log in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()
