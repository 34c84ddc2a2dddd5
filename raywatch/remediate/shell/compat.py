"""The Ray internals the remediation shell relies on beyond :mod:`raywatch.serve.compat`
(to be merged there): the Serve controller's current declarative application configs.

:func:`moved` of :mod:`raywatch.serve.compat` checks :data:`INTERNALS` the same way
(``tests/remediate/test_shell_compat.py``).
"""

from __future__ import annotations

from typing import Any, Dict

from raywatch.serve.compat import Internal

__all__ = ["INTERNALS", "app_configs", "serve_client"]

INTERNALS = (
    Internal("ray.serve.context", "_get_global_client", ("raise_if_no_controller_running",),
             "find the running Serve instance for the rollout"),
    Internal("ray.serve._private.client", "ServeControllerClient", ("_controller",),
             "read the applications' declarative configs from the Serve controller"),
    Internal("ray.serve._private.controller", "ServeController.get_app_configs", (),
             "read the applications' declarative configs (the serve config YAML as deployed)"),
    Internal("ray.serve._private.client", "ServeControllerClient.deploy_apps", ("config", "_blocking"),
             "deploy the candidate, promote and roll back through Serve's declarative config"),
)


def serve_client() -> Any:
    """The running Serve instance's controller client (raises when Ray or Serve is not
    running; never starts either)."""
    import ray
    from ray.serve import context

    if not ray.is_initialized():
        raise RuntimeError("Ray is not running here: no Serve instance to read")
    return context._get_global_client(raise_if_no_controller_running=True)


def app_configs() -> Dict[str, Dict[str, Any]]:
    """Each declaratively deployed application's config as it was applied (name → the
    ``ServeApplicationSchema`` as plain data, only the fields that were set)."""
    import ray

    client = serve_client()
    configs = ray.get(client._controller.get_app_configs.remote())
    return {name: cfg.model_dump(exclude_unset=True) for name, cfg in configs.items()}


def apply_app_configs(apps: Any) -> None:
    """Apply a list of application configs (plain data) as the whole declarative state, as
    ``serve deploy`` does: the applications not in the list that were deployed from a config
    are deleted by Serve."""
    from ray.serve.schema import ServeDeploySchema

    serve_client().deploy_apps(ServeDeploySchema(applications=list(apps)), _blocking=False)
