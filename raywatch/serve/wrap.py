"""``raywatch.monitor``: wrap a Serve deployment so that its replicas monitor themselves.

The wrapper is a subclass of the user's class, made when ``monitor()`` is called and
shipped to the replicas with the deployment. It

* runs the user's ``__init__`` (sync or ``async``, as the original — ``@serve.ingress``
  classes need ``async``), then starts a :class:`~raywatch.serve.replica.ReplicaMonitor`;
* overrides each watched method (``capture.methods``, ``__call__`` by default) with a wrapper
  of the *same kind* — plain, ``async``, generator or async generator — because Serve decides
  how to call a method (thread pool, streaming) from its kind; results that are generators
  are wrapped so the latency covers the whole stream;
* keeps ``__wrapped__`` pointing at the user's undecorated function, which is how
  ``@serve.batch`` recognises a method call (``extract_self_if_method_call`` compares
  ``getattr(self, name).__wrapped__`` with the function it decorated; see
  ray-project/ray#47449) — so batched methods stay batched;
* for ``@serve.ingress`` (ASGI) classes, wraps the ASGI ``__call__``: the HTTP status is read
  from ``http.response.start``, the route template from FastAPI's matched route, and — only for
  sampled requests — the request body is *teed* (copied as it passes to the app, up to
  ``capture.max_body_bytes``), so the user's code still receives all of it;
* adds ``reconfigure``: the ``raywatch`` key of ``user_config`` reconfigures the monitor in
  place, and the rest of ``user_config`` (without that key) goes to the user's own
  ``reconfigure``, if any — so the replica is not restarted;
* adds ``_raywatch_status()`` (callable through a handle) returning the monitor's status.

The deployment keeps its name and options (``Deployment.options(func_or_class=...)``), so
``deployments:`` overrides in a serve config YAML still match it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from typing import Any, Callable, Dict, Optional, Tuple

from raywatch.config import MonitorConfig, load_config, parse_config
from raywatch.serve.extract import HttpPayload, JsonBody
from raywatch.serve.feedback import asgi_feedback, is_feedback_path, request_feedback, request_feedback_sync
from raywatch.serve.replica import ReplicaMonitor, deep_merge

__all__ = ["monitor", "monitored_class"]

logger = logging.getLogger("raywatch.serve.wrap")

_MONITOR_ATTR = "_raywatch_monitor"
_STATUS_METHOD = "_raywatch_status"
_perf = time.perf_counter


# ----------------------------------------------------------------------------- config


def _resolve_config(config: Any, overrides: Dict[str, Any]) -> MonitorConfig:
    if config is None:
        cfg = MonitorConfig()
    elif isinstance(config, MonitorConfig):
        cfg = config
    elif isinstance(config, (str, bytes)) or hasattr(config, "__fspath__"):
        cfg = load_config(config)
    else:
        cfg = parse_config(config, MonitorConfig, source="monitor(config=...)")
    if overrides:
        cfg = parse_config(deep_merge(cfg.model_dump(mode="python"), overrides), MonitorConfig,
                           source="monitor(**overrides)")
    return cfg


# ----------------------------------------------------------------------------- method wrappers


def _wrap_gen(mon_capture: Any, name: str, t0: float, gen: Any, args: Any, kwargs: Any) -> Any:
    def wrapped():
        outcome = None
        try:
            yield from gen
        except GeneratorExit:
            outcome = "Cancelled"
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            mon_capture.record(name, t0, outcome, None, args, kwargs, None)

    return wrapped()


def _wrap_agen(mon_capture: Any, name: str, t0: float, agen: Any, args: Any, kwargs: Any) -> Any:
    async def wrapped():
        outcome = None
        try:
            async for item in agen:
                yield item
        except GeneratorExit:
            outcome = "Cancelled"
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            mon_capture.record(name, t0, outcome, None, args, kwargs, None)
            aclose = getattr(agen, "aclose", None)
            if outcome is not None and aclose is not None:
                try:
                    await aclose()
                except BaseException:
                    pass

    return wrapped()


def _finish(cap: Any, name: str, t0: float, result: Any, args: Any, kwargs: Any) -> Any:
    t = type(result)
    if t is _GEN_T:
        return _wrap_gen(cap, name, t0, result, args, kwargs)
    if t is _AGEN_T:
        return _wrap_agen(cap, name, t0, result, args, kwargs)
    cap.record(name, t0, None, None, args, kwargs, result)
    return result


def _gen_type() -> Tuple[type, type]:
    def g():
        yield None

    async def ag():
        yield None

    return type(g()), type(ag())


_GEN_T, _AGEN_T = _gen_type()


def _copy_meta(wrapper: Callable, orig: Callable) -> Callable:
    functools.update_wrapper(wrapper, orig)
    # @serve.batch matches getattr(self, name).__wrapped__ against the undecorated function
    wrapper.__wrapped__ = getattr(orig, "__wrapped__", orig)
    return wrapper


def _is_feedback_request(mon: Any, arg: Any) -> bool:
    scope = getattr(arg, "scope", None) if type(arg).__name__ == "Request" else None
    return type(scope) is dict and is_feedback_path(mon, scope.get("path"), scope.get("method"))


def _method_wrapper(name: str, orig: Callable) -> Callable:
    """A wrapper of the same kind as ``orig`` that records each call."""
    # The generator wrappers below repeat _wrap_gen/_wrap_agen's bodies on purpose: this is
    # the request path, and delegating to them would add a generator layer to every stream
    # (one more object per request, one more hop per item).
    if inspect.isasyncgenfunction(orig):

        async def agen_method(self, *args, **kwargs):
            cap = self.__dict__.get(_MONITOR_ATTR)
            if cap is None:
                async for item in orig(self, *args, **kwargs):
                    yield item
                return
            cap = cap.capture
            t0 = _perf()
            outcome = None
            agen = orig(self, *args, **kwargs)
            try:
                async for item in agen:
                    yield item
            except GeneratorExit:
                outcome = "Cancelled"
                raise
            except BaseException as exc:
                outcome = type(exc).__name__
                raise
            finally:
                cap.record(name, t0, outcome, None, args, kwargs, None)
                if outcome is not None:
                    try:
                        await agen.aclose()
                    except BaseException:
                        pass

        return _copy_meta(agen_method, orig)

    if inspect.isgeneratorfunction(orig):

        def gen_method(self, *args, **kwargs):
            mon = self.__dict__.get(_MONITOR_ATTR)
            if mon is None:
                return (yield from orig(self, *args, **kwargs))
            cap = mon.capture
            t0 = _perf()
            outcome = None
            try:
                return (yield from orig(self, *args, **kwargs))
            except GeneratorExit:
                outcome = "Cancelled"
                raise
            except BaseException as exc:
                outcome = type(exc).__name__
                raise
            finally:
                cap.record(name, t0, outcome, None, args, kwargs, None)

        return _copy_meta(gen_method, orig)

    if inspect.iscoroutinefunction(orig):

        async def async_method(self, *args, **kwargs):
            mon = self.__dict__.get(_MONITOR_ATTR)
            if mon is None:
                return await orig(self, *args, **kwargs)
            if mon.http_feedback and args and _is_feedback_request(mon, args[0]):
                return await request_feedback(mon, args[0])
            cap = mon.capture
            t0 = _perf()
            try:
                result = await orig(self, *args, **kwargs)
            except BaseException as exc:
                cap.record(name, t0, type(exc).__name__, None, args, kwargs, None)
                raise
            return _finish(cap, name, t0, result, args, kwargs)

        return _copy_meta(async_method, orig)

    def sync_method(self, *args, **kwargs):
        mon = self.__dict__.get(_MONITOR_ATTR)
        if mon is None:
            return orig(self, *args, **kwargs)
        if mon.http_feedback and args and _is_feedback_request(mon, args[0]):
            answer = request_feedback_sync(mon, args[0])
            if answer is not None:
                return answer
        cap = mon.capture
        t0 = _perf()
        try:
            result = orig(self, *args, **kwargs)
        except BaseException as exc:
            cap.record(name, t0, type(exc).__name__, None, args, kwargs, None)
            raise
        return _finish(cap, name, t0, result, args, kwargs)

    return _copy_meta(sync_method, orig)


class _BoundedBody:
    """A body copied in ``chunks`` up to ``limit`` bytes (``size`` counts what passed)."""

    __slots__ = ()

    def body(self) -> Optional[bytes]:
        if not self.chunks or self.size > self.limit:
            return None  # truncated bodies are not parsed
        return b"".join(self.chunks)


class _BodyTee(_BoundedBody):
    """Wraps an ASGI ``receive``: passes every message through, keeps a bounded body copy."""

    __slots__ = ("receive", "limit", "chunks", "size")

    def __init__(self, receive: Callable, limit: int):
        self.receive = receive
        self.limit = limit
        self.chunks: list = []
        self.size = 0

    async def __call__(self):
        msg = await self.receive()
        try:
            if msg.get("type") == "http.request" and self.size < self.limit:
                body = msg.get("body") or b""
                if body:
                    self.chunks.append(body[: self.limit - self.size])
                    self.size += len(body)
        except Exception:
            pass
        return msg



class _SendSpy(_BoundedBody):
    """Wraps an ASGI ``send``: reads the status and (bounded) the response body."""

    __slots__ = ("send", "status", "limit", "chunks", "size", "json")

    def __init__(self, send: Callable, limit: int):
        self.send = send
        self.status: Optional[int] = None
        self.limit = limit
        self.chunks: Optional[list] = None
        self.size = 0
        self.json = False

    async def __call__(self, msg):
        try:
            t = msg.get("type")
            if t == "http.response.start":
                self.status = msg.get("status")
                if self.limit:
                    for k, v in msg.get("headers") or ():
                        if k.lower() == b"content-type" and b"json" in v.lower():
                            self.json = True
                            self.chunks = []
            elif t == "http.response.body" and self.chunks is not None and self.size <= self.limit:
                body = msg.get("body") or b""
                self.chunks.append(body)
                self.size += len(body)
        except Exception:
            pass
        await self.send(msg)


def _route_of(scope: Dict[str, Any]) -> Optional[str]:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return None


def _asgi_wrapper(orig: Callable) -> Callable:
    async def asgi_call(self, scope, receive, send):
        mon = self.__dict__.get(_MONITOR_ATTR)
        if mon is None or scope.get("type") != "http":
            return await orig(self, scope, receive, send)
        if mon.http_feedback and is_feedback_path(mon, scope.get("path"), scope.get("method")):
            return await asgi_feedback(mon, scope, receive, send)
        cap = mon.capture
        t0 = _perf()
        sampled = cap.sampled()
        max_body = mon.config.capture.max_body_bytes
        tee = _BodyTee(receive, max_body) if sampled and max_body else None
        # the response body (a prediction) is kept for sampled requests, and for all when
        # feedback is on (predictions are joined to ground truth by request id)
        spy = _SendSpy(send, max_body if (sampled or cap.keep_results) else 0)
        try:
            await orig(self, scope, tee or receive, spy)
        except BaseException as exc:
            cap.record_decided("__call__", t0, type(exc).__name__, spy.status or 500, None, None, None, _route_of(scope))
            raise
        try:
            route = _route_of(scope)
            body = spy.body() if spy.json else None
            result = JsonBody(body) if body else None
            if sampled:
                args = (HttpPayload(scope.get("query_string") or b"", tee.body() if tee else None),)
                cap.record_decided("__call__", t0, None, spy.status, args, {}, result, route)
            else:
                cap.record_decided("__call__", t0, None, spy.status, None, None, result, route)
        except Exception as exc:
            cap.failed(exc)

    return _copy_meta(asgi_call, orig)


# ----------------------------------------------------------------------------- the subclass


def _replica_labels(cls_name: str, config: MonitorConfig):
    from raywatch.serve.buffer import Labels

    app, deployment, replica_id, node_id = "default", cls_name, "local", None
    try:
        from ray import serve

        ctx = serve.get_replica_context()
        app = ctx.app_name or app
        deployment = ctx.deployment or deployment
        rid = getattr(ctx, "replica_id", None)
        replica_id = getattr(rid, "unique_id", None) or ctx.replica_tag or replica_id
    except Exception:
        pass
    try:
        import ray

        if ray.is_initialized():  # get_runtime_context() would start a cluster otherwise
            node_id = ray.get_runtime_context().get_node_id()
    except Exception:
        pass
    return Labels(app=app, deployment=deployment, replica_id=str(replica_id), model=config.model,
                  version=config.version, node_id=node_id)


def _start_monitor(self: Any, cls_name: str, config_data: Dict[str, Any], nvml: Any = None) -> None:
    try:
        cfg = MonitorConfig.model_validate(config_data)
        user_cfg = getattr(self, "_raywatch_pending_user_config", None)
        mon = ReplicaMonitor(cfg, _replica_labels(cls_name, cfg), nvml=nvml)
        mon.base_config = cfg
        self.__dict__[_MONITOR_ATTR] = mon
        if user_cfg is not None:
            mon.reconfigure(user_cfg, base=cfg)
        mon.start()
    except Exception as exc:  # monitoring must never stop the model from starting
        logger.error("raywatch monitor could not start in %s: %s: %s", cls_name, type(exc).__name__, exc)


def _split_user_config(user_config: Any) -> Tuple[Any, Optional[Dict[str, Any]]]:
    if isinstance(user_config, dict) and "raywatch" in user_config:
        rest = {k: v for k, v in user_config.items() if k != "raywatch"}
        return rest, (user_config.get("raywatch") or {})
    return user_config, None


def monitored_class(cls: type, config: MonitorConfig) -> type:
    """The monitored subclass of ``cls`` (used by :func:`monitor`; exposed for tests)."""
    from ray.serve._private.http_util import ASGIAppReplicaWrapper

    config_data = config.model_dump(mode="python")
    cls_name = cls.__name__
    is_asgi = issubclass(cls, ASGIAppReplicaWrapper)
    ns: Dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}

    # ---- __init__: same kind as the user's (ingress classes have an async __init__)
    user_init = cls.__init__
    if inspect.iscoroutinefunction(user_init):

        async def __init__(self, *args, **kwargs):
            await user_init(self, *args, **kwargs)
            _start_monitor(self, cls_name, config_data)

    else:

        def __init__(self, *args, **kwargs):
            user_init(self, *args, **kwargs)
            _start_monitor(self, cls_name, config_data)

    functools.update_wrapper(__init__, user_init)
    del __init__.__wrapped__  # Serve inspects __init__'s own (async) kind, not the user's
    ns["__init__"] = __init__

    # ---- watched methods
    for name in config.capture.methods:
        orig = getattr(cls, name, None)
        if orig is None or not callable(orig):
            logger.warning("raywatch: %s has no method %r to watch; skipped", cls_name, name)
            continue
        if is_asgi and name == "__call__":
            ns[name] = _asgi_wrapper(orig)
        else:
            ns[name] = _method_wrapper(name, orig)

    # ---- reconfigure: ours handles the raywatch key, the user's gets the rest
    user_reconf = getattr(cls, "reconfigure", None)
    takes_rank = False
    if user_reconf is not None:
        try:
            takes_rank = "rank" in inspect.signature(user_reconf).parameters
        except (TypeError, ValueError):
            pass

    def _raywatch_reconf(self, user_config):
        rest, ours = _split_user_config(user_config)
        mon = self.__dict__.get(_MONITOR_ATTR)
        if ours is not None:
            if mon is None:
                self._raywatch_pending_user_config = ours
            else:
                mon.reconfigure(ours, base=getattr(mon, "base_config", None))
        return rest, ours

    if user_reconf is not None and inspect.iscoroutinefunction(user_reconf):
        if takes_rank:

            async def reconfigure(self, user_config, rank=None):
                rest, _ = _raywatch_reconf(self, user_config)
                return await user_reconf(self, rest, rank=rank)

        else:

            async def reconfigure(self, user_config):
                rest, _ = _raywatch_reconf(self, user_config)
                return await user_reconf(self, rest)

    elif takes_rank:

        def reconfigure(self, user_config, rank=None):
            rest, _ = _raywatch_reconf(self, user_config)
            return user_reconf(self, rest, rank=rank)

    else:

        def reconfigure(self, user_config):
            rest, _ = _raywatch_reconf(self, user_config)
            if user_reconf is not None:
                return user_reconf(self, rest)
            return None

    ns["reconfigure"] = reconfigure

    def _raywatch_status(self):
        mon = self.__dict__.get(_MONITOR_ATTR)
        return mon.status() if mon is not None else {"running": False}

    ns[_STATUS_METHOD] = _raywatch_status

    # ---- graceful shutdown: final flush, then the user's destructor. Always a plain
    # function, even when the user's (or @serve.ingress's) __del__ is async: Serve awaits a
    # coroutine a sync __del__ returns, and a garbage-collector call then creates no
    # un-awaited coroutine of ours.
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


def _stop_monitor(self: Any) -> None:
    try:
        mon = self.__dict__.pop(_MONITOR_ATTR, None)
        if mon is not None:
            mon.stop(flush=True, timeout=1.0)
    except Exception:
        pass


def _function_class(fn: Callable) -> type:
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


def monitor(deployment_or_class: Any, config: Any = None, **overrides: Any) -> Any:
    """Wrap a Serve deployment (or a class / function) so its replicas monitor themselves.

    ``config`` is a :class:`~raywatch.config.MonitorConfig`, a mapping, or a YAML path;
    keyword ``overrides`` are merged into it (``capture={"sample_rate": 0.1}``,
    ``model="fraud"``). Returns a Serve ``Deployment`` with the same name and options.
    """
    from ray import serve
    from ray.serve.deployment import Deployment

    cfg = _resolve_config(config, overrides)
    if isinstance(deployment_or_class, Deployment):
        target = deployment_or_class.func_or_class
        if isinstance(target, str):
            raise TypeError("raywatch.monitor needs the deployment's class, not an import path string")
        if getattr(target, "_raywatch_config", None) is not None:
            raise TypeError(f"deployment {deployment_or_class.name!r} is already monitored")
        cls = target if inspect.isclass(target) else _function_class(target)
        return deployment_or_class.options(func_or_class=monitored_class(cls, cfg))
    if inspect.isclass(deployment_or_class):
        if getattr(deployment_or_class, "_raywatch_config", None) is not None:
            raise TypeError(f"{deployment_or_class.__name__} is already monitored")
        return serve.deployment(monitored_class(deployment_or_class, cfg), name=deployment_or_class.__name__)
    if callable(deployment_or_class):
        fn = deployment_or_class
        return serve.deployment(monitored_class(_function_class(fn), cfg), name=fn.__name__)
    raise TypeError(f"raywatch.monitor expects a Serve deployment, a class or a function, got {type(deployment_or_class).__name__}")
