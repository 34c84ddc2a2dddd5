"""raywatch.serve — the replica side: ``monitor()``, capture, buffer, shipping, resources.

``monitor`` is imported lazily (it needs Ray Serve); the capture, extraction, buffer and
shipper modules do not import Ray at module level.
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

__all__ = ["monitor", "monitored_class", "ReplicaMonitor", "app"]

_EXPORTS = {
    "monitor": "raywatch.serve.wrap:monitor",
    "monitored_class": "raywatch.serve.wrap:monitored_class",
    "app": "raywatch.serve.app:app",  # serve config YAML: import_path: raywatch.serve:app (stream E)
    "ReplicaMonitor": "raywatch.serve.replica:ReplicaMonitor",
}

# Not cached in this namespace: ``app`` is also the name of a submodule, and a cached
# builder function would hide the module from ``import raywatch.serve.app as ...``.
__getattr__ = lazy_exports(globals(), _EXPORTS, cache=False)[0]
