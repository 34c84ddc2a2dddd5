"""Small helpers for every test folder (imported as ``rw_test_support``: ``tests/`` is on
``sys.path`` through ``tests/conftest.py``; a unique name, since test folders are not
packages)."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_http_port(serve: Any) -> int:
    """Start Serve's HTTP proxy on 127.0.0.1 at a free port (if Serve is not running yet)
    and return the port it listens on."""
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    except Exception:
        pass
    return serve.context._get_global_client().http_config.port


def wait_until(pred: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5, what: str = "condition",
               retry_errors: bool = False) -> Any:
    """Poll ``pred`` until it returns something truthy and return that; AssertionError after
    ``timeout`` seconds. With ``retry_errors`` an exception from ``pred`` counts as "not yet"
    (for a service that may be restarting) instead of failing at once."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as exc:
            if not retry_errors:
                raise
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not met in {timeout}s; last={last!r}")


def kill_stats_actors(ray: Any, cfg: Any, shards: int) -> None:
    """Kill the stats actor shards 0 … shards-1 of ``cfg`` (those that exist) and forget
    their cached handles."""
    from raywatch.actor import actor as actor_mod

    for shard in range(shards):
        name = cfg.actor.shard_name(shard)
        try:
            ray.kill(ray.get_actor(name, namespace=cfg.actor.namespace))
        except ValueError:
            pass
        actor_mod._handles.pop((cfg.actor.namespace, name), None)
