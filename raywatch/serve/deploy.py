"""Serve config files: check one (raywatch's parts included) and deploy it.

:func:`load_serve_config` reads a serve config YAML and checks everything raywatch adds,
with errors that name the file and the field path: the ``args`` of ``raywatch.serve:app``
applications (monitor settings inline or in their own file, profiles) and
``user_config.raywatch`` of each deployment. :func:`deploy_serve_config` deploys a checked
file to the connected cluster, as ``serve deploy`` does, and waits until it runs.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from raywatch.config import AlertingConfig, ConfigError, MonitorConfig, _problems, parse_config, read_yaml, validate
from raywatch.config import validate_args

__all__ = ["load_serve_config", "deploy_serve_config", "reference_problems", "BUILDER_PATHS"]

logger = logging.getLogger("raywatch.serve.deploy")

BUILDER_PATHS = ("raywatch.serve:app", "raywatch.serve.app:app")
"""The ``import_path`` values of a monitored application."""


def _resolve_relative(value: Optional[str], base: Path) -> Optional[str]:
    if not value or ":" in value and not Path(value).exists():
        return value  # an import path, or nothing
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists():
        return str(p)
    return str((base / p).resolve())


_PLACEHOLDER_APP = {"import_path": "raywatch.serve:app"}  # a valid application, to check the other args alone
_UNION_TAGS = {"str", "int", "float", "bool", "none", "dict", "list"}


def reference_problems(monitor: Any, prefix: str) -> List[str]:
    """The cross-references of a raywatch configuration's routing (``route.receiver: no sink
    named 'slak'``), checked on the raw mapping ``monitor`` on their own, so that they are
    reported beside its field errors rather than after those are fixed (the configuration's
    own check runs only once every field is valid). Lines start with ``prefix``.

    >>> reference_problems({"alerting": {"route": {"receiver": "slak"}, "sinks": [{"name": "slack", "type": "log"}]}}, "m.yaml: ")
    ["m.yaml: alerting.route.receiver: no sink named 'slak' (sinks: slack)"]
    """
    alerting = monitor.get("alerting") if isinstance(monitor, Mapping) else None
    if not isinstance(alerting, Mapping) or "route" not in alerting:
        return []
    routing = {k: alerting[k] for k in ("route", "sinks") if k in alerting}
    try:
        validate(AlertingConfig, routing, unset_env=set())  # secrets are not what this checks
    except ConfigError as err:
        top = "(top level): "
        return [prefix + "alerting." + (p[len(top):] if p.startswith(top) else p) for p in err.problems]
    return []


def _add(problems: List[str], new: List[str]) -> None:
    problems.extend(p for p in new if p not in problems)


def _raw_monitor(monitor: Any) -> Tuple[Any, str]:
    """The monitor settings as written and the prefix of their errors (a file names itself)."""
    if isinstance(monitor, str):
        try:
            return read_yaml(monitor), f"{monitor}: "
        except ConfigError:
            return None, ""
    return monitor, ""


def _check_monitored_app(a: Dict[str, Any], name: Any, where: str, base: Path, problems: List[str], notes: List[str],
                         unset_env: Optional[Set[str]]) -> Any:
    """Check (and resolve the relative paths of) a ``raywatch.serve:app`` application's args.
    When they are wrong, each part (the args' shape, ``monitor``, each of ``overrides``) is
    checked on its own as well, with the monitor's cross-references, so that every problem is
    reported in one pass."""
    args = dict(a.get("args") or {})
    if isinstance(args.get("monitor"), str):
        args["monitor"] = _resolve_relative(args["monitor"], base)
    if isinstance(args.get("profile"), str):
        args["profile"] = _resolve_relative(args["profile"], base)
    if isinstance(args.get("profiles"), dict):
        args["profiles"] = {k: _resolve_relative(v, base) if isinstance(v, str) else v for k, v in args["profiles"].items()}
    a["args"] = args
    awhere = f"{where}.args"
    try:
        checked = validate_args(args, awhere, unset_env=unset_env)
    except ConfigError as err:
        found = list(err.problems)
        parts = [dict(args, monitor=None, overrides={}), {"application": _PLACEHOLDER_APP, "monitor": args.get("monitor")}]
        for part in parts:
            try:
                validate_args(part, awhere, unset_env=unset_env)
            except ConfigError as e:
                _add(found, e.problems)
        overrides = args.get("overrides")
        for dep, over in (overrides.items() if isinstance(overrides, Mapping) else ()):
            try:
                parse_config(over, MonitorConfig, unset_env=unset_env)
            except ConfigError as e:
                _add(found, [f"{awhere}: overrides.{dep}.{p}" for p in e.problems])
        raw, file_prefix = _raw_monitor(args.get("monitor"))
        _add(found, reference_problems(raw, file_prefix or f"{awhere}: monitor."))
        _add(problems, found)
        return None
    notes.append(f"application {name!r}: {checked.application.import_path} monitored by raywatch")
    return checked


def _check_user_configs(a: Dict[str, Any], where: str, checked: Any, problems: List[str],
                        unset_env: Optional[Set[str]]) -> None:
    """Check ``user_config.raywatch`` of each deployment over the monitor settings it reconfigures."""
    for j, d in enumerate(a.get("deployments") or []):
        uc = d.get("user_config") if isinstance(d, dict) else None
        if not (isinstance(uc, dict) and "raywatch" in uc):
            continue
        over = uc.get("raywatch") or {}
        dwhere = f"{where}.deployments[{j}].user_config.raywatch"
        if not isinstance(over, dict):
            problems.append(f"{dwhere}: expected a mapping of monitor settings, got {type(over).__name__}")
            continue
        base = checked.monitor_config(d.get("name"), unset_env=unset_env) if checked is not None else MonitorConfig()
        try:
            base.merged(over)
        except ConfigError as err:
            _add(problems, [f"{dwhere}.{p}" for p in err.problems])
            _add(problems, reference_problems(over, f"{dwhere}."))


def _serve_problems(err: ValidationError, source: str) -> List[str]:
    """Serve's own field errors, one per field: a union field (``num_replicas``: an int or
    "auto") fails once, not once per member type."""
    seen = set()
    details = []
    for e in err.errors(include_url=False):
        loc = list(e["loc"])
        while loc and isinstance(loc[-1], str) and ("-" in loc[-1] or "[" in loc[-1] or loc[-1] in _UNION_TAGS):
            loc.pop()
        if tuple(loc) in seen:
            continue
        seen.add(tuple(loc))
        details.append(InitErrorDetails(type=e["type"], loc=tuple(loc), input=e.get("input"), ctx=e.get("ctx") or {}))
    try:
        return _problems(ValidationError.from_exception_data(err.title, details), source)
    except Exception:  # an error pydantic cannot rebuild: as Serve reported it
        return _problems(err, source)


def load_serve_config(path: Union[str, os.PathLike], *, unset_env: Optional[Set[str]] = None) -> Tuple[Any, List[str]]:
    """Load and check a serve config YAML; returns Ray Serve's ``ServeDeploySchema`` and notes.

    Relative ``monitor``/``profile`` paths are resolved against the serve config file's
    directory. Every problem is reported in one :class:`ConfigError`: raywatch's fields,
    its cross-references and Serve's own fields. With ``unset_env`` (a set), unset ``${VAR}``
    references in the monitor settings are collected there instead of being errors.
    """
    from ray.serve.schema import ServeDeploySchema

    path = Path(path)
    source = str(path)
    data = read_yaml(path)
    if not isinstance(data, Mapping) or "applications" not in data:
        raise ConfigError([f"{source}: applications: required field is missing (is this a serve config file?)"], source)
    problems: List[str] = []
    notes: List[str] = []
    for i, a in enumerate(data.get("applications") or []):
        if not isinstance(a, dict):
            continue
        where = f"{source}: applications[{i}]"
        checked = None
        if a.get("import_path") in BUILDER_PATHS:
            checked = _check_monitored_app(a, a.get("name", i), where, path.parent, problems, notes, unset_env)
        _check_user_configs(a, where, checked, problems, unset_env)
    schema = None
    try:
        schema = ServeDeploySchema.model_validate(data)
    except ValidationError as err:
        _add(problems, _serve_problems(err, source))
    if problems:
        raise ConfigError(problems, source)
    return schema, notes


def deploy_serve_config(path: Union[str, os.PathLike], *, patch: Optional[Callable[[Dict[str, Any]], None]] = None,
                        timeout: float = 180.0, on_change: Optional[Callable[[Dict[str, str]], None]] = None) -> Any:
    """Check a serve config file, deploy it to the connected cluster, wait until it runs.

    ``patch(data)`` may edit the checked config (as a dict) before it is deployed;
    ``on_change(states)`` is called with ``{application: status}`` (``DEPLOYING``,
    ``RUNNING``…) whenever a status changes. Returns ``serve.status()``. Raises ConfigError
    (bad file) or RuntimeError (deploy failed, with Serve's message, which for raywatch's
    args names the field path).
    """
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    from raywatch.serve.compat import deploy_apps

    schema, _ = load_serve_config(path)
    if patch is not None:
        data = schema.model_dump(exclude_unset=True)
        patch(data)
        schema = ServeDeploySchema.model_validate(data)
    deploy_apps(schema)
    names = [a.name for a in schema.applications]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        st = serve.status()
        apps = {n: st.applications.get(n) for n in names}
        states = {n: (str(a.status).split(".")[-1] if a else "NOT_STARTED") for n, a in apps.items()}
        if states != last:
            logger.info("serve applications: %s", states)
            if on_change is not None:
                on_change(states)
        last = states
        failed = {n: a for n, a in apps.items() if a is not None and states[n] == "DEPLOY_FAILED"}
        if failed:
            raise RuntimeError("\n".join(f"application {n!r} failed to deploy: {a.message}" for n, a in failed.items()))
        if all(s == "RUNNING" for s in states.values()):
            return st
        time.sleep(0.5)
    raise RuntimeError(f"applications {names} not running after {timeout:.0f}s: {last}")
