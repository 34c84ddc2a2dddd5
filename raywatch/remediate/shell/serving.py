"""The rollout's operations on Serve, through its declarative config (what ``serve deploy``
does), so that Serve itself rolls replicas and the serve config stays the one description
of what runs.

* :func:`deploy_candidate` — the model's application deployed again beside itself as
  ``<app>-rw-candidate`` (no HTTP route), with the candidate's ``user_config`` on the
  model's deployment; every other application is applied unchanged.
* :func:`promote` — the champion deployment's ``user_config`` set to the candidate's:
  Serve calls ``reconfigure`` on the running replicas (a ``user_config``-only change does
  not restart them), then the candidate application is removed.
* :func:`remove_candidate` — the candidate application removed (rollback), the champion
  untouched.

:func:`patched_user_config` (pure) is the ``user_config`` a promotion writes, and
:func:`write_serve_config` writes it back into the user's serve config YAML when the policy
names one, so that ``serve deploy serve.yaml`` afterwards keeps the promoted model.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any, Dict, List, Mapping, Optional

from raywatch.config.remediate import CANDIDATE_SUFFIX
from raywatch.serve import compat

__all__ = ["candidate_app_name", "patched_user_config", "current_user_config", "deploy_candidate", "promote",
           "remove_candidate", "wait_healthy", "write_serve_config", "CANDIDATE_SUFFIX"]

log = logging.getLogger("raywatch.remediate.shell.serving")


def candidate_app_name(app: str) -> str:
    return f"{app}{CANDIDATE_SUFFIX}"


def patched_user_config(user_config: Optional[Mapping[str, Any]], artifact: str, version: str, *,
                        artifact_key: str = "artifact", version_key: str = "version") -> Dict[str, Any]:
    """The deployment's ``user_config`` with the candidate's artifact and version (and
    raywatch's version label, so the replicas' series carry the new version).

    >>> patched_user_config({"artifact": "/m/v1", "version": "v1", "threshold": 0.5, "raywatch": {"capture": {}}}, "/m/v2", "v2")
    {'artifact': '/m/v2', 'version': 'v2', 'threshold': 0.5, 'raywatch': {'capture': {}, 'version': 'v2'}}
    """
    out = copy.deepcopy(dict(user_config or {}))
    out[artifact_key] = artifact
    out[version_key] = version
    if isinstance(out.get("raywatch"), Mapping):
        out["raywatch"] = {**out["raywatch"], "version": version}
    return out


def _deployment(app_cfg: Dict[str, Any], name: str) -> Dict[str, Any]:
    deps: List[Dict[str, Any]] = app_cfg.setdefault("deployments", [])
    for d in deps:
        if d.get("name") == name:
            return d
    d = {"name": name}
    deps.append(d)
    return d


def _current(app: str) -> Dict[str, Dict[str, Any]]:
    configs = compat.app_configs()
    if app not in configs:
        raise RuntimeError(f"application {app!r} was not deployed from a serve config (serve deploy / raywatch deploy); "
                           f"the rollout changes applications through Serve's declarative config "
                           f"(declarative applications: {', '.join(sorted(configs)) or 'none'})")
    return configs


def current_user_config(app: str, deployment: str) -> Dict[str, Any]:
    """The ``user_config`` the champion deployment was deployed with."""
    cfg = _current(app)[app]
    for d in cfg.get("deployments") or []:
        if d.get("name") == deployment:
            return dict(d.get("user_config") or {})
    return {}


def deploy_candidate(app: str, deployment: str, user_config: Mapping[str, Any]) -> str:
    """Deploy the candidate application; returns its name."""
    configs = _current(app)
    name = candidate_app_name(app)
    cand = copy.deepcopy(configs[app])
    cand["name"] = name
    cand["route_prefix"] = None
    _deployment(cand, deployment)["user_config"] = dict(user_config)
    apps = [c for n, c in configs.items() if n != name] + [cand]
    compat.apply_app_configs(apps)
    log.info("candidate application %s deployed", name)
    return name


def promote(app: str, deployment: str, user_config: Mapping[str, Any]) -> Dict[str, Any]:
    """Set the champion deployment's ``user_config`` and remove the candidate application;
    returns the champion application's config as applied."""
    configs = _current(app)
    champ = copy.deepcopy(configs[app])
    _deployment(champ, deployment)["user_config"] = dict(user_config)
    name = candidate_app_name(app)
    apps = [champ if n == app else c for n, c in configs.items() if n != name]
    compat.apply_app_configs(apps)
    log.info("promoted: %s/%s reconfigured with the candidate's user_config", app, deployment)
    return champ


def remove_candidate(app: str) -> bool:
    """Remove the candidate application (the champion and every other one unchanged)."""
    configs = compat.app_configs()
    name = candidate_app_name(app)
    if name not in configs:
        return False
    compat.apply_app_configs([c for n, c in configs.items() if n != name])
    return True


def _status(app: str) -> Any:
    from ray import serve

    return serve.status().applications.get(app)


def wait_healthy(app: str, deployment: Optional[str] = None, timeout: float = 300.0, *,
                 since: Optional[float] = None, poll: float = 0.25) -> None:
    """Wait until ``app`` is RUNNING (and ``deployment`` HEALTHY); RuntimeError on
    DEPLOY_FAILED / UNHEALTHY or after ``timeout``. ``since``: an update applied at that
    time must have been seen first (the app's ``last_deployed_time_s``)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        st = _status(app)
        if st is not None:
            last = st.status
            fresh = since is None or (getattr(st, "last_deployed_time_s", 0) or 0) >= since - 1.0
            if str(st.status).endswith("DEPLOY_FAILED") or str(st.status).endswith("UNHEALTHY"):
                raise RuntimeError(f"application {app} is {st.status}: {st.message or ''}".strip())
            dep_ok = True
            if deployment is not None:
                ds = st.deployments.get(deployment)
                dep_ok = ds is not None and str(ds.status).endswith("HEALTHY") and not str(ds.status).endswith("UNHEALTHY")
            if fresh and str(st.status).endswith("RUNNING") and dep_ok:
                return
        time.sleep(poll)
    raise RuntimeError(f"application {app} not running after {timeout:.0f}s (last status {last})")


def write_serve_config(path: str, app: str, deployment: str, user_config: Mapping[str, Any]) -> bool:
    """Write the promoted ``user_config`` into the serve config YAML at ``path`` (atomic
    replace, the file's mode kept); False when the file has no such application."""
    import yaml

    from raywatch.config import read_yaml

    data = read_yaml(path) or {}
    for a in data.get("applications") or []:
        if a.get("name") == app:
            _deployment(a, deployment)["user_config"] = dict(user_config)
            break
    else:
        return False
    mode = os.stat(path).st_mode & 0o777
    tmp = f"{path}.rw-tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, mode)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(tmp, path)
    return True
