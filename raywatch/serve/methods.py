"""The request path of a monitored deployment: the method wrappers.

:func:`method_wrapper` makes, for one watched method of the user's class, a wrapper of the
*same kind* — plain, ``async``, generator or async generator — because Serve decides how to
call a method (thread pool, streaming) from its kind. Each call reads the clock, calls the
user's method and records the outcome with :meth:`~raywatch.serve.capture.Capture.record`;
a result that is a generator is wrapped so that the latency covers the whole stream. The
wrapper keeps ``__wrapped__`` pointing at the user's undecorated function, which is how
``@serve.batch`` recognises a method call (it compares ``getattr(self, name).__wrapped__``
with the function it decorated), so batched methods stay batched.

The replica's :class:`~raywatch.serve.replica.ReplicaMonitor` is found in the instance's
``__dict__`` under :data:`MONITOR_ATTR`; without one (it failed to start, or has stopped)
the user's method is called as if unwrapped. When the monitor answers the feedback route,
a feedback POST to a plain HTTP handler is answered here and never reaches the user's code.

Nothing here imports Ray.
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any, Callable, Tuple

from raywatch.serve.feedback import is_feedback_path, request_feedback, request_feedback_sync

__all__ = ["MONITOR_ATTR", "method_wrapper", "copy_meta"]

MONITOR_ATTR = "_raywatch_monitor"
"""Where a monitored instance keeps its :class:`~raywatch.serve.replica.ReplicaMonitor`."""

_perf = time.perf_counter


def _wrap_gen(cap: Any, name: str, t0: float, gen: Any, args: Any, kwargs: Any) -> Any:
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
            cap.record(name, t0, outcome, None, args, kwargs, None)

    return wrapped()


def _wrap_agen(cap: Any, name: str, t0: float, agen: Any, args: Any, kwargs: Any) -> Any:
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
            cap.record(name, t0, outcome, None, args, kwargs, None)
            aclose = getattr(agen, "aclose", None)
            if outcome is not None and aclose is not None:
                try:
                    await aclose()
                except BaseException:
                    pass

    return wrapped()


def _gen_types() -> Tuple[type, type]:
    def g():
        yield None

    async def ag():
        yield None

    return type(g()), type(ag())


_GEN_T, _AGEN_T = _gen_types()


def _finish(cap: Any, name: str, t0: float, result: Any, args: Any, kwargs: Any) -> Any:
    """Record a call that returned ``result``; a generator result is recorded when it ends."""
    t = type(result)
    if t is _GEN_T:
        return _wrap_gen(cap, name, t0, result, args, kwargs)
    if t is _AGEN_T:
        return _wrap_agen(cap, name, t0, result, args, kwargs)
    cap.record(name, t0, None, None, args, kwargs, result)
    return result


def copy_meta(wrapper: Callable, orig: Callable) -> Callable:
    """``wrapper`` with ``orig``'s name and docs, ``__wrapped__`` at the undecorated function."""
    functools.update_wrapper(wrapper, orig)
    # @serve.batch matches getattr(self, name).__wrapped__ against the undecorated function
    wrapper.__wrapped__ = getattr(orig, "__wrapped__", orig)
    return wrapper


def _is_feedback_request(mon: Any, arg: Any) -> bool:
    scope = getattr(arg, "scope", None) if type(arg).__name__ == "Request" else None
    return type(scope) is dict and is_feedback_path(mon, scope.get("path"), scope.get("method"))


def method_wrapper(name: str, orig: Callable) -> Callable:
    """A wrapper of the same kind as ``orig`` that records each call."""
    # The generator wrappers below repeat _wrap_gen/_wrap_agen's bodies on purpose: this is
    # the request path, and delegating to them would add a generator layer to every stream
    # (one more object per request, one more hop per item).
    if inspect.isasyncgenfunction(orig):

        async def agen_method(self, *args, **kwargs):
            cap = self.__dict__.get(MONITOR_ATTR)
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

        return copy_meta(agen_method, orig)

    if inspect.isgeneratorfunction(orig):

        def gen_method(self, *args, **kwargs):
            mon = self.__dict__.get(MONITOR_ATTR)
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

        return copy_meta(gen_method, orig)

    if inspect.iscoroutinefunction(orig):

        async def async_method(self, *args, **kwargs):
            mon = self.__dict__.get(MONITOR_ATTR)
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

        return copy_meta(async_method, orig)

    def sync_method(self, *args, **kwargs):
        mon = self.__dict__.get(MONITOR_ATTR)
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

    return copy_meta(sync_method, orig)
