"""Registering models: their configuration, labels and reference profile.

A replica registers its model when it connects (``register_model``: the model key, its
:class:`~raywatch.config.MonitorConfig` and the profile's bytes); a batch from a model the
actor does not know registers it with the actor's own configuration (and the replica is
asked to register it properly: ``REREGISTER``).

With ``actor.profile_key`` configured, a profile must carry a valid HMAC-SHA256 signature
(:mod:`raywatch.stats.signing`): an unsigned or forged one is refused (counted as
``register.profile_signature``), the model runs without it and status says why
(``profile_refused``). Profiles are checked again when a restarted actor reads them back.

Configurations are stored as ``raywatch.config`` records, version 1 (JSON)::

    {"format": "raywatch.config", "version": 1, "config": <MonitorConfig.to_data()>}

Secrets are written as their ``${ENV}`` references, or masked when they had none: a
resolved secret is never stored. A configuration read back with masked secrets (or with a
``${ENV}`` variable unset in this process) cannot deliver alerts: the model says so in
status (``config_secrets``), the failure is counted, and ingest asks the model's replicas
to register their configuration again (:data:`REREGISTER`).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Set, Tuple

from raywatch.aggregate.data import fields, record
from raywatch.aggregate.failures import Failures
from raywatch.aggregate.model import ModelState
from raywatch.config import AlertingConfig, MonitorConfig, has_masked_secrets, parse_config
from raywatch.stats.batch import ReplicaBatch
from raywatch.stats.batch import REREGISTER
from raywatch.stats import signing
from raywatch.stats.profile import Profile

__all__ = ["register", "for_batch", "alerting_for", "config_record", "config_from_record"]

CONFIG_FORMAT, CONFIG_VERSION = "raywatch.config", 1


def config_record(cfg: MonitorConfig) -> Dict[str, Any]:
    return record(CONFIG_FORMAT, CONFIG_VERSION, config=cfg.to_data())


def config_from_record(data: Optional[Mapping[str, Any]]) -> Tuple[Optional[MonitorConfig], Set[str]]:
    """The configuration of a stored record (None for none stored) and the ``${ENV}``
    variables it refers to that are not set here (their secrets are left empty)."""
    if data is None:
        return None, set()
    unset: Set[str] = set()
    cfg = MonitorConfig.from_data(fields(dict(data), CONFIG_FORMAT, CONFIG_VERSION)["config"], unset_env=unset)
    return cfg, unset


def _sink_names(cfg: AlertingConfig) -> list:
    return [s.name for s in cfg.sinks]


def _parse(config: Any, actor_config: MonitorConfig, failures: Failures) -> Tuple[MonitorConfig, str]:
    """``(config, secrets)``: the model's configuration and ``"ok"`` or ``"masked"``."""
    if not config:
        return actor_config, "ok"
    if isinstance(config, MonitorConfig):
        cfg = config
    else:
        try:
            cfg = parse_config(dict(config))
        except Exception as exc:
            failures.fail("register.config", exc)
            return actor_config, "ok"
    if cfg is actor_config or not has_masked_secrets(cfg.alerting):
        return cfg, "ok"
    # secrets lost on the way (a JSON dump, a stored config without ${ENV} references): the
    # actor's own configuration (handed over with its secrets) serves when it has the same sinks
    if not has_masked_secrets(actor_config.alerting) and _sink_names(cfg.alerting) == _sink_names(actor_config.alerting):
        return cfg.model_copy(update={"alerting": actor_config.alerting}), "ok"
    failures.fail("register.secrets", ValueError(
        "the model's alerting config has masked secrets ('**********'): its replicas are asked to register "
        "their configuration again (the MonitorConfig object keeps its secrets; a JSON dump masks them)"))
    return cfg, "masked"


def register(models: Dict[str, ModelState], model_key: str, config: Any, profile_bytes: Optional[bytes], *,
             actor_config: MonitorConfig, failures: Failures, labels: Optional[Mapping[str, str]] = None) -> ModelState:
    """Create or update the model ``model_key`` in ``models``; returns its state."""
    cfg, secrets = _parse(config, actor_config, failures)
    app, _, deployment = model_key.partition("/")
    lab = {
        "app": app,
        "deployment": deployment,
        "model": (labels or {}).get("model") or cfg.model or deployment,
        "version": (labels or {}).get("version") or cfg.version or "",
    }
    profile = None
    refused = None
    if profile_bytes is not None:
        key = actor_config.actor.profile_key
        try:
            if key is not None:
                signing.verify(profile_bytes, key)
            profile = Profile.from_bytes(profile_bytes)
        except signing.SignatureError as exc:
            failures.fail("register.profile_signature", exc)
            refused, profile_bytes = str(exc), None
        except Exception as exc:
            failures.fail("register.profile", exc)
            refused, profile_bytes = f"unreadable: {exc}", None
    ms = models.get(model_key)
    if ms is None:
        ms = models[model_key] = ModelState(model_key, lab, cfg, profile, profile_bytes)
    else:
        ms.config = cfg
        ms.labels.update({k: v for k, v in lab.items() if v})
        if profile is not None:
            ms.profile, ms.profile_bytes = profile, profile_bytes
    if profile is not None:
        ms.profile_refused = None
    elif refused is not None:
        ms.profile_refused = refused
    ms.config_secrets = secrets
    return ms


def for_batch(models: Dict[str, ModelState], b: ReplicaBatch, *, actor_config: MonitorConfig,
              failures: Failures) -> Tuple[ModelState, bool]:
    """The model of a batch, and whether it was registered just now (with the actor's config)."""
    ms = models.get(b.model_key)
    if ms is None:
        ms = register(models, b.model_key, None, None, actor_config=actor_config, failures=failures,
                      labels={"model": b.model or "", "version": b.version or ""})
        return ms, True
    if b.model and ms.labels.get("model") != b.model and not ms.config.model:
        ms.labels["model"] = b.model
    if b.version and ms.labels.get("version") != b.version:
        ms.labels["version"] = b.version
    return ms, False


def alerting_for(ms: ModelState, actor_config: MonitorConfig) -> AlertingConfig:
    """The alerting a model's series go to: its own when it has rules or sinks, else the actor's."""
    own = ms.config.alerting
    return own if (own.rules or own.sinks) else actor_config.alerting
