"""raywatch: sidecar model monitoring for Ray Serve.

The public surface is small and re-exported here; everything else is internal. Names are
imported lazily so that ``import raywatch`` stays cheap and the pure core (stats, drift,
alerts, sinks) never pulls in ``ray``.
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> "module:attribute"
_EXPORTS = {
    "monitor": "raywatch.serve.wrap:monitor",
    "AlertEngine": "raywatch.alerts.engine:AlertEngine",
    "AlertingConfig": "raywatch.config:AlertingConfig",
    "Series": "raywatch.series:Series",
    "replay_dead_letters": "raywatch.alerts.replay:replay",
    "ConfigError": "raywatch.config:ConfigError",
    "MonitorConfig": "raywatch.config:MonitorConfig",
    "load_config": "raywatch.config:load_config",
    "Profile": "raywatch.stats.profile:Profile",
    "WindowSummary": "raywatch.stats.summary:WindowSummary",
    "detect_drift": "raywatch.drift.detect:detect_drift",
    "DriftReport": "raywatch.drift.report:DriftReport",
    "status": "raywatch.actor.api:status",
    "feedback": "raywatch.actor.api:feedback",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
