"""``raywatch.serve:app`` — switch monitoring on from a serve config YAML alone.

An application builder for Ray Serve's config files. Its typed ``args`` name the user's own
application (import path and args, exactly what the YAML said before) and the monitor's
configuration, inline or as a path to a raywatch YAML::

    applications:
      - name: fraud
        route_prefix: /fraud
        import_path: raywatch.serve:app          # was: deployments.fraud:build
        args:
          application:
            import_path: deployments.fraud:build  # the user's app, unchanged
            args: {seed: 0}
          monitor: configs/monitor.yaml           # or an inline mapping
          profile: deployments.fraud:reference_profile
        deployments:
          - name: FraudModel
            user_config:
              raywatch:                           # hot-reloaded, no replica restart
                capture: {sample_rate: 0.5}

The builder builds the user's application, then wraps every deployment in it (or those
listed under ``deployments``) with :func:`raywatch.monitor`, keeping names and options so
that the YAML's ``deployments:`` overrides still match, and composition (deployments bound
into other deployments) intact.

A mistake in the args fails the deploy with a :class:`~raywatch.config.ConfigError` naming
the field path and what was expected (and the file, for a monitor YAML given by path, or when
the serve config is loaded with :func:`raywatch.serve.deploy.load_serve_config` / ``raywatch deploy`` /
``raywatch check-config``).

A profile given as ``module:function`` is written to ``~/.raywatch/profiles`` (owner-only),
under a name keyed by the profile's content (its creation time left out), so that deploying
the same profile again reuses its file; the folder keeps the :data:`MAX_CACHED_PROFILES`
most recently used files (and at most :data:`MAX_CACHED_BYTES`), removing the oldest. A
``profile_path`` in the monitor settings that cannot be read fails the deploy, unless
``profile_required`` is false.

When the ingress deployment's settings have ``remediation:`` (issue 14), the builder puts
the rollout router (:mod:`raywatch.serve.router`) in front of it, as the application's new
ingress: it logs the payloads (``payload_log``), and the remediation controller steers it to
mirror requests to a candidate, then to give it a share of them. Only the ingress can
remediate (a ConfigError says so for another deployment).

The builder's arguments (:class:`~raywatch.config.MonitoredAppArgs`) are declared with the
rest of the schema in :mod:`raywatch.config`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

from raywatch.config import APP_ARGS_SOURCE, ConfigError, MonitoredAppArgs, MonitorConfig, to_data, validate_args
from raywatch.serve.replica import check_profile

__all__ = [
    "app",
    "build_monitored_app",
    "PROFILE_DIR",
    "MAX_CACHED_PROFILES",
    "MAX_CACHED_BYTES",
    "profile_key",
]

logger = logging.getLogger("raywatch.serve.app")

PROFILE_DIR = "~/.raywatch/profiles"
MAX_CACHED_PROFILES = 16
"""Generated profile files kept in :data:`PROFILE_DIR` (the most recently used)."""
MAX_CACHED_BYTES = 256 << 20
"""Bytes of generated profile files kept in :data:`PROFILE_DIR`."""

# --------------------------------------------------------------------------- building


def _import_attr(path: str) -> Any:
    module, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    mod = importlib.import_module(module)
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise ImportError(f"module {module!r} has no attribute {attr!r}") from None


def _profile_file(spec: str, where: str) -> str:
    """A local profile file for ``spec`` (a path, or the import path of a profile function)."""
    from raywatch.stats.profile import Profile

    path = Path(spec).expanduser()
    if path.exists():
        Profile.load(path)  # fail the deploy now on a damaged file, not in every replica
        return str(path.resolve())
    if ":" not in spec:
        raise ConfigError([f"{where}: profile: no such file {spec!r} (expected a profile file or 'module:function')"], where)
    try:
        made = _import_attr(spec)
        made = made() if callable(made) and not isinstance(made, Profile) else made
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError([f"{where}: profile: {spec!r} failed: {type(exc).__name__}: {exc}"], where) from None
    data = made if isinstance(made, (bytes, bytearray)) else getattr(made, "to_bytes", lambda: None)()
    if not data:
        raise ConfigError([f"{where}: profile: {spec!r} returned {type(made).__name__}, expected a Profile"], where)
    data = bytes(data)
    try:
        key = profile_key(data)
    except Exception as exc:
        raise ConfigError([f"{where}: profile: {spec!r} returned bytes that are no profile: {exc}"], where) from None
    folder = Path(os.path.expanduser(PROFILE_DIR))
    out = folder / f"{spec.replace(':', '.').replace('/', '_')}-{key}.profile"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # the profiles hold a sample of the reference data
    if out.exists():
        os.utime(out)  # used again: the most recent
        logger.info("reference profile %s: the same content as %s", spec, out)
    else:
        (made if isinstance(made, Profile) else Profile.from_bytes(data)).save(out)  # atomic, owner-only
        logger.info("reference profile %s written to %s", spec, out)
    _trim_profiles(folder, keep=out)
    return str(out)


def profile_key(data: bytes) -> str:
    """What identifies a profile's content: a hash of its bytes without the time it was
    made (``info.created_at``), so that the same profile built twice has one key."""
    from raywatch.stats import codec
    from raywatch.stats.profile import READS, Profile

    Profile.from_bytes(data)  # (a damaged blob fails here, not in every replica)
    meta, arrays = codec.unpack(data, b"PR", READS)
    info = dict(meta.get("info") or {})
    info.pop("created_at", None)
    meta = {**meta, "info": info}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(arrays[name].tobytes())
    return h.hexdigest()[:16]


def _trim_profiles(folder: Path, keep: Path) -> None:
    """Keep the most recently used generated profiles: at most MAX_CACHED_PROFILES files
    and MAX_CACHED_BYTES bytes (``keep`` always stays)."""
    files = []
    for f in folder.glob("*.profile"):
        try:
            st = f.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, f))
    files.sort(key=lambda t: t[0], reverse=True)
    count = size = 0
    for _, nbytes, f in files:
        count += 1
        size += nbytes
        if f != keep and (count > MAX_CACHED_PROFILES or size > MAX_CACHED_BYTES):
            try:
                f.unlink()
                logger.info("removed the cached reference profile %s (oldest)", f)
            except OSError:
                pass


def build_monitored_app(args: Union[MonitoredAppArgs, Mapping[str, Any]], where: str = APP_ARGS_SOURCE):
    """Build the user's application and wrap its deployments with :func:`raywatch.monitor`."""
    from ray.serve.deployment import Application

    from raywatch.serve.compat import bound_deployment, build_user_app
    from raywatch.serve.wrap import wrap_checked

    args = validate_args(args, where)
    try:
        target = _import_attr(args.application.import_path)
    except Exception as exc:
        raise ConfigError(
            [f"{where}: application.import_path: cannot import {args.application.import_path!r}: {type(exc).__name__}: {exc}"], where
        ) from None
    user_app = build_user_app(target, dict(args.application.args))
    if not isinstance(user_app, Application):
        raise ConfigError([f"{where}: application.import_path: expected a Serve application, got {type(user_app).__name__}"], where)

    ingress = bound_deployment(user_app).name
    names = _deployment_names(user_app)
    wanted = set(args.deployments) if args.deployments is not None else set(names)
    unknown = sorted((wanted | set(args.overrides) | set(args.profiles)) - set(names))
    if unknown:
        raise ConfigError(
            [f"{where}: deployments: no deployment named {u!r} in the application (it has {', '.join(sorted(names))})" for u in unknown],
            where,
        )
    profiles = dict(args.profiles)
    if args.profile:
        profiles.setdefault(ingress, args.profile)
    configs: Dict[str, MonitorConfig] = {}
    for name in wanted:
        cfg = args.monitor_config(name, where)
        spec = profiles.get(name)
        if spec:
            cfg = cfg.model_copy(update={"profile_path": _profile_file(spec, f"{where}: profiles.{name}" if name != ingress else where)})
        else:
            check_profile(cfg, f"{where}: monitor ({name})")
        configs[name] = cfg
    _check_remediation(ingress, configs, args.overrides, where)
    cache: Dict[int, Any] = {}
    out = _rebuild(user_app, configs, wrap_checked, cache)
    return _with_router(out, ingress, configs, where)


def _check_remediation(ingress: str, configs: Dict[str, MonitorConfig], overrides: Mapping[str, Any], where: str) -> None:
    """(issue 14) Only the ingress remediates: ``remediation`` in the shared ``monitor``
    settings is the ingress's (the other deployments are monitored without it, and without
    its ``payload_log``, which the router in front of the ingress writes); in ``overrides`` of
    another deployment it is an error."""
    others = sorted(n for n, c in configs.items() if n != ingress and _remediates(c)
                    and "remediation" in (overrides.get(n) or {}))
    if others:
        raise ConfigError([f"{where}: overrides.{n}.remediation: only the application's ingress ({ingress}) can "
                           "remediate: the rollout router in front of it sends requests to the candidate" for n in others],
                          where)
    for n, c in list(configs.items()):
        if n != ingress and _remediates(c):  # (and its payload log is the router's, unless its overrides say)
            keep_log = "payload_log" in (overrides.get(n) or {})
            configs[n] = c.model_copy(update={"remediation": None, **({} if keep_log else {"payload_log": None})})


def _remediates(cfg: MonitorConfig) -> bool:
    return cfg.remediation is not None and cfg.remediation.enabled


def _with_router(app: Any, ingress: str, configs: Mapping[str, MonitorConfig], where: str) -> Any:
    """(issue 14) The rollout router in front of an ingress that remediates."""
    cfg = configs.get(ingress)
    if cfg is None or not _remediates(cfg):
        return app
    from raywatch.serve.router import router_deployment

    sink = next((s for s in cfg.alerting.sinks if s.type == "remediation"), None)
    return router_deployment().bind(
        app, deployment=ingress, model=cfg.model or ingress, version=cfg.version,
        payload_log=to_data(cfg.payload_log) if cfg.payload_log is not None else None, capture=to_data(cfg.capture),
        **({"controller": sink.controller, "namespace": sink.namespace} if sink is not None else {}))


def _deployment_names(app: Any) -> List[str]:
    from ray.serve.deployment import Application

    from raywatch.serve.compat import bound_deployment

    out: List[str] = []

    def walk(o: Any) -> None:
        if isinstance(o, Application):
            d = bound_deployment(o)
            if d.name not in out:
                out.append(d.name)
            for a in list(d.init_args) + list(d.init_kwargs.values()):
                walk(a)
        elif isinstance(o, (list, tuple)):
            for a in o:
                walk(a)
        elif isinstance(o, dict):
            for a in o.values():
                walk(a)

    walk(app)
    return out


def _rebuild(app: Any, configs: Mapping[str, MonitorConfig], monitor: Any, cache: Dict[int, Any]) -> Any:
    from ray.serve.deployment import Application

    from raywatch.serve.compat import bound_deployment

    def sub(o: Any) -> Any:
        if isinstance(o, Application):
            return _rebuild(o, configs, monitor, cache)
        if isinstance(o, list):
            return [sub(a) for a in o]
        if isinstance(o, tuple):
            return tuple(sub(a) for a in o)
        if isinstance(o, dict):
            return {k: sub(v) for k, v in o.items()}
        return o

    if id(app) in cache:  # the same bound deployment used twice stays one deployment
        return cache[id(app)]
    d = bound_deployment(app)
    init_args = tuple(sub(a) for a in d.init_args)
    init_kwargs = {k: sub(v) for k, v in d.init_kwargs.items()}
    dep = monitor(d, configs[d.name]) if d.name in configs else d
    out = dep.bind(*init_args, **init_kwargs)
    cache[id(app)] = out
    return out


def app(args: MonitoredAppArgs):
    """The application builder behind ``import_path: raywatch.serve:app``."""
    return build_monitored_app(args)
