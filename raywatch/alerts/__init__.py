"""raywatch.alerts: rules, alert lifecycle, routing and delivery.

Public names (imported lazily so that ``import raywatch.alerts.matchers`` stays light):

* :class:`Series`, :class:`Alert`, :class:`AlertEngine` (``from_config``, ``evaluate``,
  ``alerts``, ``state``/``restore``, ``silence``, ``close``);
* :func:`replay_dead_letters` (the CLI's ``raywatch replay-dead-letters``);
* exports for users' own tools: :func:`prometheus_rules`, :func:`datadog_monitors`,
  :func:`grafana_dashboard`, :func:`alertmanager_config` (the CLI's ``raywatch export``).
"""

from __future__ import annotations

from raywatch._lazy import lazy_exports

_EXPORTS = {
    "Series": "raywatch.alerts.alert:Series",
    "Alert": "raywatch.alerts.alert:Alert",
    "fingerprint": "raywatch.alerts.alert:fingerprint",
    "AlertEngine": "raywatch.alerts.engine:AlertEngine",
    "Notification": "raywatch.alerts.notification:Notification",
    "replay_dead_letters": "raywatch.alerts.deadletter:replay",
    "read_dead_letters": "raywatch.alerts.deadletter:read_dead_letters",
    "prometheus_rules": "raywatch.alerts.export:prometheus_rules",
    "datadog_monitors": "raywatch.alerts.export:datadog_monitors",
    "grafana_dashboard": "raywatch.alerts.export:grafana_dashboard",
    "alertmanager_config": "raywatch.alerts.export:alertmanager_config",
    "write_exports": "raywatch.alerts.export:write_exports",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
