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
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from pydantic import ValidationError

from raywatch.config import ConfigError, MonitorConfig, _problems, read_yaml
from raywatch.config import validate_args

__all__ = ["load_serve_config", "deploy_serve_config", "BUILDER_PATHS"]

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


def _check_monitored_app(a: Dict[str, Any], name: Any, where: str, base: Path, problems: List[str], notes: List[str]) -> Any:
    """Check (and resolve the relative paths of) a ``raywatch.serve:app`` application's args."""
    args = dict(a.get("args") or {})
    if isinstance(args.get("monitor"), str):
        args["monitor"] = _resolve_relative(args["monitor"], base)
    if isinstance(args.get("profile"), str):
        args["profile"] = _resolve_relative(args["profile"], base)
    if isinstance(args.get("profiles"), dict):
        args["profiles"] = {k: _resolve_relative(v, base) if isinstance(v, str) else v for k, v in args["profiles"].items()}
    try:
        checked = validate_args(args, f"{where}.args")
    except ConfigError as err:
        problems.extend(err.problems)
        return None
    a["args"] = args
    notes.append(f"application {name!r}: {checked.application.import_path} monitored by raywatch")
    return checked


def _check_user_configs(a: Dict[str, Any], where: str, checked: Any, problems: List[str]) -> None:
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
        base = checked.monitor_config(d.get("name")) if checked is not None else MonitorConfig()
        try:
            base.merged(over)
        except ConfigError as err:
            problems.extend(f"{dwhere}.{p}" for p in err.problems)


def load_serve_config(path: Union[str, os.PathLike]) -> Tuple[Any, List[str]]:
    """Load and check a serve config YAML; returns Ray Serve's ``ServeDeploySchema`` and notes.

    Relative ``monitor``/``profile`` paths are resolved against the serve config file's
    directory.
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
            checked = _check_monitored_app(a, a.get("name", i), where, path.parent, problems, notes)
        _check_user_configs(a, where, checked, problems)
    if problems:
        raise ConfigError(problems, source)
    try:
        schema = ServeDeploySchema.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_problems(err, source), source) from None
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
