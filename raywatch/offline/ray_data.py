"""Ray Data, imported when a command runs on it: ``raywatch[data]`` installs what it needs.

>>> MISSING.format(error="No module named 'ray.data'").startswith("running on Ray Data needs")
True
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

__all__ = ["ray_data", "connect", "MISSING"]

log = logging.getLogger("raywatch.offline.ray_data")

MISSING = ("running on Ray Data needs Ray Data's dependencies: pip install 'raywatch[data]' "
           "(or pip install 'ray[data]') — {error}")


def ray_data() -> Any:
    """The ``ray.data`` module; ImportError naming the extra when it cannot be imported."""
    try:
        import ray.data
    except ImportError as exc:
        raise ImportError(MISSING.format(error=exc)) from exc
    return ray.data


def connect(address: Optional[str] = None) -> Any:
    """The ``ray`` module, connected: to ``address`` (or ``$RAY_ADDRESS``) when given, else to
    the cluster this process already uses, or one ``ray start`` runs on this machine, else a
    new local one (every core of this machine). Progress bars off: the CLI prints its own."""
    import ray

    ray_data()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        log.info("connecting to Ray%s", f" at {address}" if address else " (a local cluster)")
        extra = {} if address else {"include_dashboard": False}
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, **extra)
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray
