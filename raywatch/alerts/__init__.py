"""raywatch.alerts: rules, alert lifecycle, routing and delivery.

Public names (imported lazily so that importing one module of the package stays light):

* :class:`Series` (the catalogue's sample, :class:`raywatch.series.Series`), :class:`Alert`,
  :func:`fingerprint`, :class:`AlertEngine` (``from_config``, ``evaluate``, ``alerts``,
  ``state``/``restore``, ``silence``, ``close``);
* :class:`Notification`, what the engine hands to sinks (:mod:`raywatch.sinks.notification`);
* :func:`read_dead_letters` and :func:`replay_dead_letters` (the CLI's ``raywatch
  replay-dead-letters``).

Files for other tools (Prometheus rules, Alertmanager config, Grafana, Datadog monitors)
are written by :mod:`raywatch.export`, which builds on this package.
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

_EXPORTS = {
    "Series": "raywatch.series:Series",
    "Alert": "raywatch.alerts.alert:Alert",
    "fingerprint": "raywatch.alerts.alert:fingerprint",
    "AlertEngine": "raywatch.alerts.engine:AlertEngine",
    "Notification": "raywatch.sinks.notification:Notification",
    "replay_dead_letters": "raywatch.alerts.replay:replay",
    "read_dead_letters": "raywatch.alerts.deadletter:read_dead_letters",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
