"""``raywatch.monitor``: wrap a Serve deployment so that its replicas monitor themselves.

``monitor(deployment_or_class, config=None, **overrides)`` resolves the configuration
(:func:`resolve_config`) and returns the deployment with the monitored subclass of its
class (:func:`~raywatch.serve.subclass.monitored_class`), made with
``Deployment.options(func_or_class=...)`` so that it keeps its name and options and the
``deployments:`` overrides of a serve config YAML still match it. A plain class or a
function becomes a deployment of its own name. A ``profile_path`` that cannot be read fails
here, at deploy time, with what to do (:func:`~raywatch.serve.replica.check_profile`),
unless ``profile_required`` is false.

What runs per request is in :mod:`raywatch.serve.methods` (method wrappers) and
:mod:`raywatch.serve.asgi` (ASGI ingress apps); what runs per replica in
:mod:`raywatch.serve.replica`.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional

from raywatch.config import MonitorConfig, load_config, parse_config
from raywatch.serve.replica import check_profile
from raywatch.serve.subclass import function_class, monitored_class

__all__ = ["monitor", "resolve_config", "wrap_checked"]


def resolve_config(config: Any = None, overrides: Optional[Mapping[str, Any]] = None) -> MonitorConfig:
    """The monitor's configuration from ``config`` (a MonitorConfig, a mapping, a YAML path
    or None for the defaults) with ``overrides`` merged in.

    >>> resolve_config({"model": "fraud"}, {"capture": {"sample_rate": 0.5}}).capture.sample_rate
    0.5
    """
    if config is None:
        cfg = MonitorConfig()
    elif isinstance(config, MonitorConfig):
        cfg = config
    elif isinstance(config, (str, bytes)) or hasattr(config, "__fspath__"):
        cfg = load_config(config)
    else:
        cfg = parse_config(config, MonitorConfig, source="monitor(config=...)")
    return cfg.merged(overrides, source="monitor(**overrides)")


def monitor(deployment_or_class: Any, config: Any = None, **overrides: Any) -> Any:
    """Wrap a Serve deployment (or a class / function) so its replicas monitor themselves.

    ``config`` is a :class:`~raywatch.config.MonitorConfig`, a mapping, or a YAML path;
    keyword ``overrides`` are merged into it (``capture={"sample_rate": 0.1}``,
    ``model="fraud"``). Returns a Serve ``Deployment`` with the same name and options.
    """
    cfg = resolve_config(config, overrides)
    check_profile(cfg, "monitor()")
    return wrap_checked(deployment_or_class, cfg)


def wrap_checked(deployment_or_class: Any, cfg: MonitorConfig) -> Any:
    """:func:`monitor` for a configuration already resolved and checked (the app builder's)."""
    from ray import serve
    from ray.serve.deployment import Deployment

    if isinstance(deployment_or_class, Deployment):
        target = deployment_or_class.func_or_class
        if isinstance(target, str):
            raise TypeError("raywatch.monitor needs the deployment's class, not an import path string")
        if getattr(target, "_raywatch_config", None) is not None:
            raise TypeError(f"deployment {deployment_or_class.name!r} is already monitored")
        cls = target if inspect.isclass(target) else function_class(target)
        return deployment_or_class.options(func_or_class=monitored_class(cls, cfg))
    if inspect.isclass(deployment_or_class):
        if getattr(deployment_or_class, "_raywatch_config", None) is not None:
            raise TypeError(f"{deployment_or_class.__name__} is already monitored")
        return serve.deployment(monitored_class(deployment_or_class, cfg), name=deployment_or_class.__name__)
    if callable(deployment_or_class):
        fn = deployment_or_class
        return serve.deployment(monitored_class(function_class(fn), cfg), name=fn.__name__)
    raise TypeError(f"raywatch.monitor expects a Serve deployment, a class or a function, got {type(deployment_or_class).__name__}")
