"""The monitored subclass of a deployment's class (the cold path: made once per deploy).

:func:`monitored_class` makes a subclass of the user's class, shipped to the replicas with
the deployment. It

* runs the user's ``__init__`` (sync or ``async``, as the original — ``@serve.ingress``
  classes need ``async``), then starts a :class:`~raywatch.serve.replica.ReplicaMonitor`
  labelled by :func:`~raywatch.serve.identity.replica_labels`; a monitor that cannot start
  is logged and the model serves unmonitored;
* overrides each watched method (``capture.methods``, ``__call__`` by default) with a
  request-path wrapper (:func:`~raywatch.serve.methods.method_wrapper`), or for an ASGI
  ingress class wraps ``__call__`` with the ASGI tee (:func:`~raywatch.serve.asgi.asgi_wrapper`);
* adds ``reconfigure``: the ``raywatch`` key of ``user_config`` reconfigures the monitor in
  place, and the rest of ``user_config`` (without that key) goes to the user's own
  ``reconfigure``, if any, so the replica is not restarted. It has the user's kind (sync or
  ``async``) and takes ``rank`` when the user's does, because Serve reads both;
* adds ``_raywatch_status()`` (callable through a handle) returning the monitor's status;
* adds a ``__del__`` that flushes the monitor before the user's destructor.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, Dict, Optional, Tuple

from raywatch.config import MonitorConfig
from raywatch.serve.asgi import asgi_wrapper
from raywatch.serve.identity import replica_labels
from raywatch.serve.methods import MONITOR_ATTR, method_wrapper
from raywatch.serve.replica import ReplicaMonitor

__all__ = ["monitored_class", "function_class", "STATUS_METHOD"]

logger = logging.getLogger("raywatch.serve.subclass")

STATUS_METHOD = "_raywatch_status"
"""The method a handle calls for a replica monitor's status."""


def _start_monitor(self: Any, cls_name: str, config: MonitorConfig) -> None:
    try:
        user_cfg = getattr(self, "_raywatch_pending_user_config", None)
        mon = ReplicaMonitor(config, replica_labels(cls_name, config))
        mon.base_config = config
        self.__dict__[MONITOR_ATTR] = mon
        if user_cfg is not None:
            mon.reconfigure(user_cfg, base=config)
        mon.start()
    except Exception as exc:  # monitoring must never stop the model from starting
        logger.error("raywatch monitor could not start in %s: %s: %s", cls_name, type(exc).__name__, exc)


def _stop_monitor(self: Any) -> None:
    try:
        mon = self.__dict__.pop(MONITOR_ATTR, None)
        if mon is not None:
            mon.stop(flush=True, timeout=1.0)
    except Exception:
        pass


def _split_user_config(user_config: Any) -> Tuple[Any, Optional[Dict[str, Any]]]:
    if isinstance(user_config, dict) and "raywatch" in user_config:
        rest = {k: v for k, v in user_config.items() if k != "raywatch"}
        return rest, (user_config.get("raywatch") or {})
    return user_config, None


def _apply_user_config(self: Any, user_config: Any) -> Any:
    """Reconfigure the monitor from the ``raywatch`` key; the rest of ``user_config``."""
    rest, ours = _split_user_config(user_config)
    mon = self.__dict__.get(MONITOR_ATTR)
    if ours is not None:
        if mon is None:
            self._raywatch_pending_user_config = ours
        else:
            mon.reconfigure(ours, base=getattr(mon, "base_config", None))
    return rest


def _reconfigure_method(user_reconf: Optional[Callable]) -> Callable:
    """``reconfigure`` of the user's kind and signature (Serve reads both)."""
    takes_rank = False
    if user_reconf is not None:
        try:
            takes_rank = "rank" in inspect.signature(user_reconf).parameters
        except (TypeError, ValueError):
            pass
    if user_reconf is None:

        def reconfigure(self, user_config):
            _apply_user_config(self, user_config)

    elif inspect.iscoroutinefunction(user_reconf):
        if takes_rank:

            async def reconfigure(self, user_config, rank=None):
                return await user_reconf(self, _apply_user_config(self, user_config), rank=rank)

        else:

            async def reconfigure(self, user_config):
                return await user_reconf(self, _apply_user_config(self, user_config))

    elif takes_rank:

        def reconfigure(self, user_config, rank=None):
            return user_reconf(self, _apply_user_config(self, user_config), rank=rank)

    else:

        def reconfigure(self, user_config):
            return user_reconf(self, _apply_user_config(self, user_config))

    return reconfigure


def _init_method(user_init: Callable, cls_name: str, config: MonitorConfig) -> Callable:
    """``__init__`` of the user's kind (ingress classes have an async one), then the monitor."""
    if inspect.iscoroutinefunction(user_init):

        async def __init__(self, *args, **kwargs):
            await user_init(self, *args, **kwargs)
            _start_monitor(self, cls_name, config)

    else:

        def __init__(self, *args, **kwargs):
            user_init(self, *args, **kwargs)
            _start_monitor(self, cls_name, config)

    functools.update_wrapper(__init__, user_init)
    del __init__.__wrapped__  # Serve inspects __init__'s own (async) kind, not the user's
    return __init__


def monitored_class(cls: type, config: MonitorConfig) -> type:
    """The monitored subclass of ``cls`` (used by :func:`raywatch.monitor`)."""
    from raywatch.serve.compat import is_asgi_ingress

    cls_name = cls.__name__
    is_asgi = is_asgi_ingress(cls)
    ns: Dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    ns["__init__"] = _init_method(cls.__init__, cls_name, config)

    for name in config.capture.methods:
        orig = getattr(cls, name, None)
        if orig is None or not callable(orig):
            logger.warning("raywatch: %s has no method %r to watch; skipped", cls_name, name)
            continue
        ns[name] = asgi_wrapper(orig) if is_asgi and name == "__call__" else method_wrapper(name, orig)

    ns["reconfigure"] = _reconfigure_method(getattr(cls, "reconfigure", None))

    def _raywatch_status(self):
        mon = self.__dict__.get(MONITOR_ATTR)
        return mon.status() if mon is not None else {"running": False}

    ns[STATUS_METHOD] = _raywatch_status

    # graceful shutdown: final flush, then the user's destructor. Always a plain function,
    # even when the user's (or @serve.ingress's) __del__ is async: Serve awaits a coroutine
    # a sync __del__ returns, and a garbage-collector call then creates no un-awaited
    # coroutine of ours.
    user_del = getattr(cls, "__del__", None)

    def __del__(self):
        _stop_monitor(self)
        if user_del is not None:
            return user_del(self)
        return None

    ns["__del__"] = __del__

    new_cls = type(cls_name, (cls,), ns)
    new_cls._raywatch_config = config
    return new_cls


def function_class(fn: Callable) -> type:
    """A class whose ``__call__`` calls the function deployment ``fn`` (same kind)."""
    if inspect.isasyncgenfunction(fn):

        async def __call__(self, *args, **kwargs):
            async for item in fn(*args, **kwargs):
                yield item

    elif inspect.isgeneratorfunction(fn):

        def __call__(self, *args, **kwargs):
            return (yield from fn(*args, **kwargs))

    elif inspect.iscoroutinefunction(fn):

        async def __call__(self, *args, **kwargs):
            return await fn(*args, **kwargs)

    else:

        def __call__(self, *args, **kwargs):
            return fn(*args, **kwargs)

    functools.update_wrapper(__call__, fn)
    del __call__.__wrapped__
    return type(fn.__name__, (), {"__call__": __call__, "__module__": fn.__module__, "__doc__": fn.__doc__})
