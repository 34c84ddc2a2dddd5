"""The test suite's own output: an integration test that skips says which test and which
Debian package; Ray's pydantic deprecation warnings do not flood the output (raywatch's own
warnings still show)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_binary_skip_names_the_test_and_the_debian_package(require_binary, monkeypatch, request):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("RAYWATCH_REQUIRE_INTEGRATION", raising=False)
    for names, package in ((("promtool",), "prometheus"), (("prometheus-alertmanager", "alertmanager"), "prometheus-alertmanager"),
                           (("chromium", "chromium-browser"), "chromium")):
        with pytest.raises(pytest.skip.Exception) as skipped:
            require_binary(*names)
        reason = str(skipped.value)
        assert request.node.nodeid in reason, reason
        assert f"Debian package `{package}`" in reason and names[0] in reason, reason
    monkeypatch.setenv("RAYWATCH_REQUIRE_INTEGRATION", "1")
    with pytest.raises(pytest.fail.Exception, match="RAYWATCH_REQUIRE_INTEGRATION=1"):
        require_binary("promtool")


def test_rays_pydantic_deprecation_warnings_are_not_in_the_test_output():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/cli/test_cli.py::test_check_config_serve_yaml"],
                         capture_output=True, text=True, cwd=str(ROOT), env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "1 passed" in res.stdout
    assert "PydanticDeprecatedSince20" not in res.stdout and "warnings summary" not in res.stdout, res.stdout[-3000:]
