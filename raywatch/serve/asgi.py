"""The ASGI tee: monitoring an ``@serve.ingress`` (FastAPI or any ASGI) deployment.

An ingress class's ``__call__(scope, receive, send)`` is wrapped by :func:`asgi_wrapper`.
For each HTTP request the wrapper reads the status from ``http.response.start``, the
route template from FastAPI's matched route, and — only for sampled requests — *tees*
the request body (copies it as it passes to the app, up to ``capture.max_body_bytes``), so
the user's code still receives all of it. The JSON response body (a prediction) is kept
for sampled requests, and for all when feedback is on (predictions are joined to ground
truth by request id). A POST to the feedback route is answered here and never reaches the
app. Nothing here raises into the request.

Nothing here imports Ray.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from raywatch.serve.extract import HttpPayload, JsonBody
from raywatch.serve.feedback import asgi_feedback, is_feedback_path
from raywatch.serve.methods import MONITOR_ATTR, copy_meta

__all__ = ["asgi_wrapper"]

_perf = time.perf_counter


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
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


def asgi_wrapper(orig: Callable) -> Callable:
    """The monitored ``__call__`` of an ASGI ingress class whose own is ``orig``."""

    async def asgi_call(self, scope, receive, send):
        mon = self.__dict__.get(MONITOR_ATTR)
        if mon is None or scope.get("type") != "http":
            return await orig(self, scope, receive, send)
        if mon.http_feedback and is_feedback_path(mon, scope.get("path"), scope.get("method")):
            return await asgi_feedback(mon, scope, receive, send)
        cap = mon.capture
        t0 = _perf()
        sampled = cap.sampled()
        max_body = mon.config.capture.max_body_bytes
        tee = _BodyTee(receive, max_body) if sampled and max_body else None
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
                args = (HttpPayload(scope.get("query_string") or b"", tee.body() if tee else None, scope.get("headers")),)
                cap.record_decided("__call__", t0, None, spy.status, args, {}, result, route)
            else:
                cap.record_decided("__call__", t0, None, spy.status, None, None, result, route)
        except Exception as exc:
            cap.failed(exc)

    return copy_meta(asgi_call, orig)
