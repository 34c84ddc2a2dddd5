"""raywatch.serve — the replica side of raywatch.

The request path (what runs while a request is served): :mod:`~raywatch.serve.methods`
(method wrappers), :mod:`~raywatch.serve.asgi` (the ASGI tee of ingress apps) and
:mod:`~raywatch.serve.capture` (one bounded append per request). Off the request path, in
each replica: :mod:`~raywatch.serve.replica` (the flusher thread), :mod:`~raywatch.serve.buffer`,
:mod:`~raywatch.serve.extract`, :mod:`~raywatch.serve.resources`, :mod:`~raywatch.serve.shipper`
and :mod:`~raywatch.serve.feedback`. The cold path (once per deploy or replica start):
:mod:`~raywatch.serve.wrap` (``monitor()``), :mod:`~raywatch.serve.subclass` (the monitored
class), :mod:`~raywatch.serve.identity`, :mod:`~raywatch.serve.app` (the
``raywatch.serve:app`` builder) and :mod:`~raywatch.serve.deploy` (serve config files).
Every Ray internal is reached through :mod:`~raywatch.serve.compat`.

``monitor`` and ``app`` are imported lazily (they need Ray Serve).
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

__all__ = ["monitor", "monitored_class", "ReplicaMonitor", "app"]

_EXPORTS = {
    "monitor": "raywatch.serve.wrap:monitor",
    "monitored_class": "raywatch.serve.subclass:monitored_class",
    "app": "raywatch.serve.app:app",  # serve config YAML: import_path: raywatch.serve:app
    "ReplicaMonitor": "raywatch.serve.replica:ReplicaMonitor",
}

# Not cached in this namespace: ``app`` is also the name of a submodule, and a cached
# builder function would hide the module from ``import raywatch.serve.app as ...``.
__getattr__ = lazy_exports(globals(), _EXPORTS, cache=False)[0]
