"""The arguments of the serve-app builder (``import_path: raywatch.serve:app`` in a serve
config file): the user's own application, and the monitor's configuration for it.

>>> a = validate_args({"application": {"import_path": "deployments.fraud:build"}, "monitor": {"model": "fraud"}})
>>> a.application.import_path, a.monitor_config().model
('deployments.fraud:build', 'fraud')
>>> validate_args({"application": {"import_path": "x:y"}, "monitor": {"drift": {"alpha": 2}}})
Traceback (most recent call last):
...
raywatch.config.base.ConfigError: raywatch.serve:app args: monitor.drift.alpha: Input should be less than 1, got 2
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Set, Union

from pydantic import Field, ValidationError, field_validator

from raywatch.config.base import ConfigError, StrictModel, _problems, deep_merge, read_yaml
from raywatch.config.monitor import MonitorConfig, load_config, parse_config

__all__ = ["ApplicationArgs", "MonitoredAppArgs", "validate_args", "APP_ARGS_SOURCE"]

APP_ARGS_SOURCE = "raywatch.serve:app args"
"""How errors in the builder's args name their source."""

_IMPORT_PATH_HELP = "expected an import path such as 'my_pkg.my_module:app'"


def _check_app_import_path(v: Any) -> str:
    if not isinstance(v, str) or ":" not in v and "." not in v:
        raise ValueError(f"{_IMPORT_PATH_HELP}, got {v!r}")
    module, _, attr = v.partition(":") if ":" in v else v.rpartition(".")
    if not module or not attr:
        raise ValueError(f"{_IMPORT_PATH_HELP}, got {v!r}")
    return v


class ApplicationArgs(StrictModel):
    """The user's own application, as the serve config named it before monitoring."""

    import_path: str
    args: Dict[str, Any] = Field(default_factory=dict)

    @field_validator("import_path")
    @classmethod
    def _import_path(cls, v: Any) -> str:
        return _check_app_import_path(v)


class MonitoredAppArgs(StrictModel):
    """``args`` of ``import_path: raywatch.serve:app`` in a serve config file.

    application:
        The user's application: ``import_path`` (an ``Application`` or a builder function)
        and its ``args``.
    monitor:
        The raywatch configuration (:class:`~raywatch.config.MonitorConfig`): an inline
        mapping, or the path of a raywatch YAML (absolute, or relative to the working
        directory; ``raywatch deploy`` resolves it relative to the serve config file).
    deployments:
        Names of the deployments to monitor; all deployments of the application by default.
    overrides:
        Per deployment name, settings merged over ``monitor`` for that deployment only.
    profile:
        The reference profile of the ingress deployment: a file written by
        ``raywatch profile build`` / ``Profile.save``, or the import path of a function
        returning a :class:`~raywatch.stats.profile.Profile` (run once, at build time).
    profiles:
        Per deployment name, the same for other deployments of a composed application.
    """

    application: ApplicationArgs
    monitor: Union[str, Dict[str, Any], None] = None
    deployments: Optional[List[str]] = None
    overrides: Dict[str, Dict[str, Any]] = Field(default_factory=dict)
    profile: Optional[str] = None
    profiles: Dict[str, str] = Field(default_factory=dict)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> "MonitoredAppArgs":  # type: ignore[override]
        # Ray Serve validates a builder's args with this; report problems our way.
        return validate_args(obj)

    def monitor_config(self, deployment: Optional[str] = None, where: str = APP_ARGS_SOURCE, *,
                       unset_env: Optional[Set[str]] = None) -> MonitorConfig:
        """The monitor's configuration (for ``deployment``, with its ``overrides``); ``unset_env``
        as in :func:`~raywatch.config.parse_config`."""
        if isinstance(self.monitor, str):
            base = load_config(self.monitor, unset_env=unset_env)
        else:
            base = _parse_prefixed(self.monitor or {}, where, "monitor.", unset_env)
        over = self.overrides.get(deployment) if deployment else None
        if not over:
            return base
        # merge what the user wrote (not a dump of the validated model, which holds derived fields)
        data = deep_merge(self.raw_monitor(), over)
        return _parse_prefixed(data, where, f"overrides.{deployment}.", unset_env)

    def raw_monitor(self) -> Dict[str, Any]:
        """The monitor settings as written: the inline mapping, or the YAML file's mapping."""
        if isinstance(self.monitor, str):
            return dict(read_yaml(self.monitor) or {})
        return dict(self.monitor or {})


def _parse_prefixed(data: Any, where: str, prefix: str, unset_env: Optional[Set[str]] = None) -> MonitorConfig:
    try:
        return parse_config(data, MonitorConfig, unset_env=unset_env)
    except ConfigError as err:
        raise ConfigError([f"{where}: {prefix}{p}" for p in err.problems], where) from None


def validate_args(obj: Any, where: str = APP_ARGS_SOURCE, *, unset_env: Optional[Set[str]] = None) -> MonitoredAppArgs:
    """Validate builder args; errors name ``where`` and the field path. With ``unset_env`` (a
    set), unset ``${VAR}`` references in the monitor settings are collected there, not errors."""
    if isinstance(obj, MonitoredAppArgs):
        return obj
    if not isinstance(obj, Mapping):
        raise ConfigError([f"{where}: expected a mapping with 'application' and 'monitor', got {type(obj).__name__}"], where)
    try:
        args = super(MonitoredAppArgs, MonitoredAppArgs).model_validate(dict(obj))
    except ValidationError as err:
        raise ConfigError(_problems(err, where), where) from None
    args.monitor_config(where=where, unset_env=unset_env)  # inline monitor settings are checked now, not in the replicas
    for name in args.overrides:
        args.monitor_config(name, where=where, unset_env=unset_env)
    return args
