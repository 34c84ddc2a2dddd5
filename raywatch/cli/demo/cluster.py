"""What both demos share (``raywatch demo`` and ``raywatch demo --remediate``): the checkout
they run from, their own local Ray cluster from start to shutdown, and the stats actor's
addresses once the first replica has created it."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import click

__all__ = ["repo_root", "use_checkout", "LocalCluster", "wait_for_actor", "shutdown"]


def repo_root() -> Optional[Path]:
    """The checkout that holds ``deployments/`` and ``configs/`` (the demo needs both)."""
    import raywatch

    here = Path(raywatch.__file__).resolve().parents[1]
    for cand in (here, Path.cwd()):
        if (cand / "deployments" / "fraud.py").exists() and (cand / "configs").is_dir():
            return cand
    return None


def use_checkout(echo: Callable[..., None]) -> Optional[Path]:
    """The checkout, importable here and by Ray's workers (replicas, Serve's controller import
    ``deployments/`` too); None, said, when raywatch does not run from one."""
    root = repo_root()
    if root is None:
        echo("raywatch demo needs the repository checkout (deployments/ and configs/); run it from the clone.", err=True)
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return root


class LocalCluster:
    """The demo's own local Ray cluster, from start to shutdown::

        with LocalCluster(echo, receiver) as run:
            run.start()
            run.traffic = Traffic(...)
            ...
            run.code = ...
        return run.code

    An interrupt or an error ends the run with its exit code (130, 1) and a line saying why;
    either way the traffic stops, the stats actor's deliveries are flushed, Ray shuts down and
    the receiver stops."""

    def __init__(self, echo: Callable[..., None], receiver: Any):
        self.echo, self.receiver = echo, receiver
        self.code = 0
        self.traffic: Any = None
        self.ray_tmp = tempfile.mkdtemp(prefix="raywatch-demo-ray-")
        self.t_start = time.monotonic()

    def __enter__(self) -> "LocalCluster":
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        return self

    def start(self) -> None:
        import ray

        self.echo("starting a local Ray cluster …")
        os.environ.pop("RAY_ADDRESS", None)  # always a fresh local cluster, never someone else's
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="raywatch-demo", _temp_dir=self.ray_tmp,
                 log_to_driver=False, configure_logging=False)

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> bool:
        if typ is KeyboardInterrupt:
            self.echo("interrupted", err=True)
            self.code = 130
        elif isinstance(exc, Exception):
            self.echo(click.style(f"demo failed: {type(exc).__name__}: {exc}", fg="red"), err=True)
            self.code = 1
        if self.traffic is not None and self.traffic._thread.is_alive():
            self.traffic.stop()
        self.echo("shutting down …")
        shutdown()
        self.receiver.stop()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)
        self.echo(f"done in {time.monotonic() - self.t_start:.0f} s")
        return typ is KeyboardInterrupt or isinstance(exc, Exception)


def wait_for_actor(api: Any, actor_cfg: Any, timeout: float = 60.0) -> Tuple[Optional[str], Optional[str]]:
    """The stats actor's ``/metrics`` and API (``/feedback``) addresses, once the first replica
    has created it and both listeners are up (the API's starts just after the metrics', so a
    status between the two would have no feedback address); None, None after ``timeout``,
    or the metrics address alone when the API is not up 10 s after it (its port taken)."""
    deadline = time.monotonic() + timeout
    metrics = None
    while time.monotonic() < deadline:
        st = api.status(config=actor_cfg)
        actor = (st.get("actors") or [{}])[0] or {}
        if actor.get("metrics_address") and metrics is None:
            metrics = actor["metrics_address"]
            deadline = min(deadline, time.monotonic() + 10.0)
        if metrics and actor.get("api_address"):
            return metrics, actor["api_address"]
        time.sleep(0.5)
    return metrics, None


def shutdown() -> None:
    """Flush the stats actor's deliveries, then stop the demo's own local cluster (Serve,
    replicas and the detached stats actor go with it)."""
    import ray

    if not ray.is_initialized():
        return
    try:
        import raywatch.actor.api as api

        for _, h in api.actors():
            try:
                ray.get(h.close.remote(), timeout=15)
            except Exception:
                pass
            ray.kill(h)
    except Exception:
        pass
    ray.shutdown()
