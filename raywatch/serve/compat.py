"""Every Ray internal raywatch relies on, in one place.

raywatch needs a few things Ray Serve does not offer publicly: the base class of
``@serve.ingress`` replicas (to wrap an ASGI app's ``__call__``), the builder call that
turns an application builder and its args into an application (for ``raywatch.serve:app``),
the bound deployment of an application (to rebuild it with monitored classes), the
controller client that deploys a serve config (``raywatch deploy``), Serve's per-request
context variable (request id and route, read on the request path) and the replica's id.

No other module imports a Ray internal or reads one of their private attributes; they call
the functions below. :data:`INTERNALS` declares each internal with the attributes, fields
or parameters raywatch uses, and :func:`moved` checks them against the installed Ray, so
that an upgrade that moves one fails a test (``tests/serve/test_compat.py``) naming the Ray
version and the internal, instead of failing inside a replica.

Nothing here imports Ray at module level.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

__all__ = [
    "Internal",
    "INTERNALS",
    "moved",
    "asgi_wrapper_class",
    "is_asgi_ingress",
    "build_user_app",
    "bound_deployment",
    "deploy_apps",
    "request_context_var",
    "replica_identity",
    "deployment_generation",
    "serve_http_port",
    "multiplexed_model_id",
    "serve_client",
    "app_configs",
    "apply_app_configs",
]


@dataclasses.dataclass(frozen=True)
class Internal:
    """A Ray internal: ``module``, the object's ``name`` in it (dotted for a method), what
    raywatch ``uses`` of it (attributes, dataclass fields, attributes its methods set on
    ``self``, or a function's parameters) and ``why``."""

    module: str
    name: str
    uses: Tuple[str, ...] = ()
    why: str = ""


INTERNALS: Tuple[Internal, ...] = (
    Internal("ray.serve._private.http_util", "ASGIAppReplicaWrapper", ("__call__", "_asgi_app"),
             "recognise @serve.ingress classes and wrap their ASGI __call__"),
    Internal("ray.serve._private.api", "call_user_app_builder_with_args_if_necessary", ("builder", "args"),
             "build the user's application from raywatch.serve:app's args"),
    Internal("ray.serve.deployment", "Application", ("_bound_deployment",),
             "rebuild an application with monitored deployments"),
    Internal("ray.serve._private.api", "serve_start", ("http_options", "proxy_location"),
             "start Serve for raywatch deploy"),
    Internal("ray.serve._private.client", "ServeControllerClient.deploy_apps", ("config", "_blocking"),
             "deploy a checked serve config without blocking (raywatch deploy; the rollout's candidate, "
             "promotion and rollback)"),
    Internal("ray.serve._private.client", "ServeControllerClient", ("http_config", "_controller"),
             "read the HTTP port Serve listens on, and the applications' declarative configs"),
    Internal("ray.serve._private.controller", "ServeController.get_app_configs", (),
             "read the applications' declarative configs (the serve config YAML as deployed) for the rollout"),
    Internal("ray.serve.context", "_get_global_client", ("raise_if_no_controller_running",),
             "find the running Serve instance"),
    Internal("ray.serve.context", "_serve_request_context", ("get",),
             "read the running request's context on the request path"),
    Internal("ray.serve.context", "_RequestContext", ("request_id", "route", "is_http_request", "multiplexed_model_id"),
             "read a request's id, route, whether it came over HTTP and its multiplexed model id"),
    Internal("ray.serve.context", "ReplicaContext", ("app_name", "deployment", "replica_id", "replica_tag", "code_version"),
             "name the replica in every series"),
    Internal("ray.serve._private.common", "ReplicaID", ("unique_id",), "name the replica in every series"),
    Internal("ray.serve._private.utils", "extract_self_if_method_call", ("args", "func"),
             "keep @serve.batch methods batched: it compares __wrapped__ of the method it is called through"),
)
"""The Ray internals raywatch relies on (checked by :func:`moved`)."""


def _resolve(module: str, name: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _members(obj: Any) -> Set[str]:
    names = set(dir(obj))
    if dataclasses.is_dataclass(obj):
        names |= {f.name for f in dataclasses.fields(obj)}
    if inspect.isclass(obj):
        try:
            names |= set(re.findall(r"self\.(\w+)\s*[:=]", inspect.getsource(obj)))
        except (OSError, TypeError):
            pass
    elif callable(obj):
        try:
            names |= set(inspect.signature(obj).parameters)
        except (TypeError, ValueError):
            pass
    return names


def moved(internals: Sequence[Internal] = INTERNALS) -> List[str]:
    """One line per internal (or used attribute) the installed Ray no longer has, naming
    the Ray version; an empty list when everything raywatch relies on is where it was."""
    import ray

    version = getattr(ray, "__version__", "?")
    out = []
    for it in internals:
        try:
            obj = _resolve(it.module, it.name)
        except (ImportError, AttributeError) as exc:
            out.append(f"Ray {version}: {it.module}.{it.name} has moved ({type(exc).__name__}: {exc}); "
                       f"raywatch uses it to {it.why}")
            continue
        lost = [u for u in it.uses if u not in _members(obj)]
        if lost:
            out.append(f"Ray {version}: {it.module}.{it.name} no longer has {', '.join(lost)}; "
                       f"raywatch uses it to {it.why}")
    return out


# ----------------------------------------------------------------------------- the replica


def asgi_wrapper_class() -> type:
    """The base class of ``@serve.ingress`` replicas."""
    from ray.serve._private.http_util import ASGIAppReplicaWrapper

    return ASGIAppReplicaWrapper


def is_asgi_ingress(cls: type) -> bool:
    """Whether ``cls`` is an ``@serve.ingress`` class (its ``__call__`` speaks ASGI)."""
    return issubclass(cls, asgi_wrapper_class())


def request_context_var() -> Any:
    """Serve's per-request context variable (``.get()`` returns the running request's
    context: ``request_id``, ``route``, ``is_http_request``), or None without Ray Serve."""
    try:
        from ray.serve.context import _serve_request_context
    except Exception:  # Ray missing or the internal moved: requests are still counted
        return None
    return _serve_request_context


def multiplexed_model_id(ctx: Any) -> str:
    """The multiplexed model id a request was sent to (``serve.get_multiplexed_model_id()``
    of that request), read off the request path from the request context it kept; "" when
    none (or outside Serve)."""
    return getattr(ctx, "multiplexed_model_id", "") or ""


def replica_identity() -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """``(app, deployment, replica_id)`` of the replica this runs in; raises outside one."""
    from ray import serve

    ctx = serve.get_replica_context()
    rid = getattr(ctx, "replica_id", None)
    return ctx.app_name, ctx.deployment, getattr(rid, "unique_id", None) or ctx.replica_tag


def deployment_generation() -> Optional[str]:
    """The code version of the deployment this replica belongs to: the same for every replica
    of one rollout, new when the deployment's code is deployed again (a ``user_config``
    change keeps it). None outside a replica or when Serve does not say."""
    from ray import serve

    version = getattr(serve.get_replica_context(), "code_version", None)
    return str(version) if version else None


# ----------------------------------------------------------------------------- building and deploying


def build_user_app(target: Any, args: Dict[str, Any]) -> Any:
    """The application of ``target`` (an Application, or a builder called with ``args``)."""
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    return call_user_app_builder_with_args_if_necessary(target, args)


def bound_deployment(app: Any) -> Any:
    """The deployment an application was bound from (its ``init_args``/``init_kwargs``)."""
    return app._bound_deployment


def deploy_apps(schema: Any) -> None:
    """Start Serve (with the schema's HTTP options and proxy location) and deploy the
    applications of a ``ServeDeploySchema`` without waiting for them."""
    from ray.serve._private import api as serve_api

    client = serve_api.serve_start(http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location)
    client.deploy_apps(schema, _blocking=False)


def serve_http_port() -> int:
    """The port Serve's HTTP proxy listens on (Serve must be running)."""
    from ray.serve import context

    return context._get_global_client().http_config.port


def batch_method_self(args: Sequence[Any], func: Callable) -> Any:
    """What ``@serve.batch`` takes for ``self`` when ``func`` is called with ``args``
    (None when it does not see a method call)."""
    from ray.serve._private.utils import extract_self_if_method_call

    return extract_self_if_method_call(list(args), func)


# ----------------------------------------------------------------------------- the rollout (issue 14)


def serve_client() -> Any:
    """The running Serve instance's controller client (raises when Ray or Serve is not
    running here; never starts either)."""
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


def apply_app_configs(apps: Sequence[Dict[str, Any]]) -> None:
    """Apply a list of application configs (plain data) as the whole declarative state, as
    ``serve deploy`` does: the applications not in the list that were deployed from a config
    are deleted by Serve."""
    from ray.serve.schema import ServeDeploySchema

    serve_client().deploy_apps(ServeDeploySchema(applications=list(apps)), _blocking=False)
