"""The ``remediation`` sink: how alert notifications reach the remediation controller.

A sink like any other (:class:`raywatch.sinks.base.Sink`), so the alert routing tree decides
what reaches it (route it the alerts that may trigger a retrain) and the delivery layer
retries it: ``send`` is one call to the controller's ``notify`` and returns once the
controller has taken the notification (decisions recorded in the audit trail); a controller
that cannot be reached is a :class:`~raywatch.sinks.base.TransientError`, retried.

Registered as sink type ``remediation`` by the hooks of ``/work/coord/hooks-14.md``
(``SINK_CLASSES`` and the config's ``SINK_TYPES``); its config has ``name``, ``controller``
(actor name) and ``namespace``.
"""

from __future__ import annotations

from typing import Any

from raywatch.sinks.base import Sink, TransientError

__all__ = ["RemediationSink"]


class RemediationSink(Sink):
    type = "remediation"

    def send(self, notification: Any) -> None:
        import ray

        from raywatch.remediate.shell.controller import DEFAULT_NAME, DEFAULT_NAMESPACE

        name = getattr(self.cfg, "controller", None) or DEFAULT_NAME
        namespace = getattr(self.cfg, "namespace", None) or DEFAULT_NAMESPACE
        try:
            handle = ray.get_actor(name, namespace=namespace)
            ray.get(handle.notify.remote(notification.to_dict()), timeout=float(self.cfg.timeout))
        except Exception as exc:  # noqa: BLE001 - not reachable, or not answering: retried
            raise TransientError(f"remediation controller {namespace}/{name} did not take the notification: "
                                 f"{type(exc).__name__}") from None
