"""Shared fixtures.

* ``ray_cluster``: one session-scoped local Ray cluster (``num_cpus=2``, no dashboard),
  Ray's files isolated under a temporary directory. Tests marked ``ray`` use it and call
  ``serve.shutdown``/``serve.delete`` through ``serve_clean``.
* ``require_binary(name)``: the path of an external binary for ``integration`` tests. It
  skips with a visible reason when the binary is missing, and fails instead when
  ``RAYWATCH_REQUIRE_INTEGRATION=1`` (as ``.ci/run`` sets).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from rw_test_support import free_port


@pytest.fixture
def port() -> int:
    return free_port()


DEBIAN_PACKAGES = {
    "prometheus": "prometheus", "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager", "alertmanager": "prometheus-alertmanager",
    "chromium": "chromium", "chromium-browser": "chromium",
}
"""The Debian package of each external binary (what ``.ci/run`` installs)."""


def _require_binary(test: str, *names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    package = DEBIAN_PACKAGES.get(names[0], names[0])
    reason = (f"{test} needs {' or '.join(names)}, not found on PATH: "
              f"install the Debian package `{package}` (apt-get install {package}; .ci/run does)")
    if os.environ.get("RAYWATCH_REQUIRE_INTEGRATION") == "1":
        pytest.fail(reason + " — RAYWATCH_REQUIRE_INTEGRATION=1 makes this a failure")
    pytest.skip(reason)


@pytest.fixture
def require_binary(request):
    """``require_binary(name, *alternatives)``: the path of the binary, or a skip (a failure
    with ``RAYWATCH_REQUIRE_INTEGRATION=1``) that names the test and the Debian package."""
    return lambda *names: _require_binary(request.node.nodeid, *names)


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    if ray.is_initialized():
        yield ray
        return
    tmp = tempfile.mkdtemp(prefix="rw-ray-")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace="raywatch-tests",
        _temp_dir=tmp,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        try:
            from ray import serve

            serve.shutdown()
        except Exception:
            pass
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def serve_clean(ray_cluster):
    """Yields ``ray.serve``; deletes every Serve application afterwards."""
    from ray import serve

    yield serve
    try:
        for name in list(serve.status().applications):
            serve.delete(name)
    except Exception:
        pass
