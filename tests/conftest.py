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


def _require_binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    reason = f"binary {' or '.join(names)!s} not found on PATH (Debian package needed; see .ci/run)"
    if os.environ.get("RAYWATCH_REQUIRE_INTEGRATION") == "1":
        pytest.fail(reason + " and RAYWATCH_REQUIRE_INTEGRATION=1")
    pytest.skip(reason)


@pytest.fixture
def require_binary():
    return _require_binary


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
