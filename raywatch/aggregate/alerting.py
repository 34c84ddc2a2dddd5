"""What the aggregation core needs of alerting, without importing :mod:`raywatch.alerts`.

The core hands each evaluation's series, grouped by the models' alerting configurations, to
an :class:`Alerting` given to its constructor — :class:`raywatch.alerts.hub.AlertingHub` in
the stats actor — which reports firing and resolved transitions back through ``record``.
:class:`NoAlerting` stands in when no alerting is given (tests, the offline report).

>>> model_key_of({"app": "fraud", "deployment": "Model", "alertname": "Slow"}), model_key_of({"alertname": "Watchdog"})
('fraud/Model', None)
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Tuple

from raywatch.config import AlertingConfig
from raywatch.series import MODEL_LABELS, Series

__all__ = ["Alerting", "NoAlerting", "model_key_of"]


class Alerting(Protocol):
    """Runs the alert rules over the series of each alerting configuration."""

    def evaluate(self, groups: Sequence[Tuple[Any, ...]], now: float,
                 record: Callable[[Dict[str, Any]], None]) -> None: ...

    def alerts(self, model_key: Optional[str] = None) -> List[Dict[str, Any]]: ...

    def state(self) -> Dict[str, Dict[str, Any]]: ...

    def restore(self, states: Mapping[str, Mapping[str, Any]]) -> None: ...

    def take_model(self, model_key: str, now: Optional[float] = None) -> Dict[str, Dict[str, Any]]: ...

    def give_model(self, configs: Iterable[Any], taken: Mapping[str, Mapping[str, Any]],
                   now: Optional[float] = None) -> int: ...


class NoAlerting:
    """No rules run; stored engine states are kept as they were (for the next checkpoint)."""

    def __init__(self) -> None:
        self._states: Dict[str, Dict[str, Any]] = {}

    def evaluate(self, groups: Any, now: float, record: Any) -> None:
        return None

    def alerts(self, model_key: Optional[str] = None) -> List[Dict[str, Any]]:
        return []

    def state(self) -> Dict[str, Dict[str, Any]]:
        return dict(self._states)

    def restore(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        self._states.update({k: dict(v) for k, v in states.items()})

    def take_model(self, model_key: str, now: Optional[float] = None) -> Dict[str, Dict[str, Any]]:
        return {}

    def give_model(self, configs: Iterable[Any], taken: Mapping[str, Mapping[str, Any]],
                   now: Optional[float] = None) -> int:
        return 0


def model_key_of(labels: Mapping[str, str]) -> Optional[str]:
    """The model key (``"app/deployment"``) of an alert's labels; None for an alert of no model."""
    app, deployment = MODEL_LABELS[0], MODEL_LABELS[1]
    return f"{labels.get(app, '')}/{labels.get(deployment, '')}" if app in labels else None
