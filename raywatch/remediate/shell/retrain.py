"""The retrain and the candidate's predictions as Ray tasks, with the policy's resources.

:func:`retrain_task` reads the labelled training rows (a Parquet snapshot of the payload
log, without the held-back rows) as a Ray Dataset, calls the user's ``retrain`` function
with a :class:`~raywatch.remediate.context.RetrainContext` and returns the candidate as
plain data (its profile as the profile codec's bytes). :func:`predict_task` scores the
candidate on the held-back rows with the user's ``predict(artifact, frame)``.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List

__all__ = ["resolve", "task_options", "retrain_task", "predict_task"]


def resolve(spec: Any) -> Any:
    """A callable from ``"module:attr"`` (or ``"module.attr"``), or the callable itself."""
    if callable(spec):
        return spec
    module, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def task_options(cfg: Any) -> Dict[str, Any]:
    """Ray task options from a :class:`~raywatch.config.remediate.RetrainConfig`.

    >>> from raywatch.config.remediate import RetrainConfig
    >>> task_options(RetrainConfig(function="m:f", num_cpus=2, resources={"trainer": 1}))
    {'num_cpus': 2.0, 'num_gpus': 0.0, 'resources': {'trainer': 1.0}, 'max_retries': 0}
    """
    out: Dict[str, Any] = {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus}
    if cfg.memory:
        out["memory"] = cfg.memory
    if cfg.resources:
        out["resources"] = dict(cfg.resources)
    out["max_retries"] = 0
    return out


def _retrain(fn_spec: Any, ctx_fields: Dict[str, Any]) -> Dict[str, Any]:
    import ray.data

    from raywatch.remediate.context import Candidate, RetrainContext

    fs = ctx_fields.get("filesystem")
    ref = ctx_fields.get("reference_profile")
    if isinstance(ref, (bytes, bytearray)):  # the model's reference profile, as the codec's bytes
        from raywatch.stats.profile import Profile

        ctx_fields = {**ctx_fields, "reference_profile": Profile.from_bytes(bytes(ref))}
    ctx = RetrainContext(dataset=ray.data.read_parquet(ctx_fields["dataset_path"], filesystem=fs), **ctx_fields)
    cand = Candidate.of(resolve(fn_spec)(ctx))
    prof = cand.profile
    if prof is not None and not isinstance(prof, (bytes, bytearray)):
        prof = prof.to_bytes()
    return {"artifact": cand.artifact, "version": cand.version, "profile": prof, "metrics": dict(cand.metrics)}


def _predict(fn_spec: Any, artifact: str, frame: Any) -> List[Any]:
    import numpy as np

    out = resolve(fn_spec)(artifact, frame)
    return np.asarray(out).tolist()


def retrain_task(cfg: Any) -> Any:
    import ray

    return ray.remote(_retrain).options(**task_options(cfg))


def predict_task(cfg: Any) -> Any:
    import ray

    return ray.remote(_predict).options(**task_options(cfg))
