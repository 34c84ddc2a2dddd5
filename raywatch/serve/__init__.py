"""raywatch.serve — the replica side: ``monitor()``, capture, buffer, shipping, resources.

``monitor`` is imported lazily (it needs Ray Serve); the capture, extraction, buffer and
shipper modules do not import Ray at module level.
"""

from __future__ import annotations

from typing import Any

__all__ = ["monitor", "monitored_class", "ReplicaMonitor", "app"]


def __getattr__(name: str) -> Any:
    if name in ("monitor", "monitored_class"):
        from raywatch.serve import wrap

        return getattr(wrap, name)
    if name == "app":  # serve config YAML: import_path: raywatch.serve:app (stream E)
        from raywatch.serve.app import app

        return app
    if name == "ReplicaMonitor":
        from raywatch.serve.replica import ReplicaMonitor

        return ReplicaMonitor
    raise AttributeError(f"module 'raywatch.serve' has no attribute {name!r}")
