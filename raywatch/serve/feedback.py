"""Ground truth over the monitored app's own HTTP route.

When ``capture.feedback`` is on, a monitored deployment that receives HTTP (an
``@serve.ingress`` app, or a plain ``__call__(self, request)`` handler, ``async`` or not) answers
``POST <route_prefix><capture.feedback_route>`` (default ``/-/raywatch/feedback``) itself:
the body is ``{"request_id": ..., "label": ...}``, a list of those, or ``{"items": [...]}``.
The route takes labels for its own model only: ``model`` is optional per item, and when
given it must name this deployment (``app/deployment``, the configured ``model`` or the
deployment's name). The labels go to the stats actor in one ``feedback_many`` call, which
joins them to the predictions by request id. Every other request goes to the user's code
untouched; this route never does.

The door is locked (:class:`FeedbackGate`, the same for the ASGI, async and sync handler
variants), checked in this order:

===  ===========================================================================
429  more than ``capture.feedback_rate_limit`` requests a second from one client
     (address), beyond a burst of ``capture.feedback_burst``; ``Retry-After`` says when
401  ``capture.feedback_token`` is set and the request lacks
     ``Authorization: Bearer <token>`` (compared in constant time)
413  the body is over ``capture.feedback_max_body_bytes``: by its ``Content-Length``, or
     while it is read, in chunks, never past the limit
400  the body is malformed
403  an item names another model
503  the stats actor cannot be reached
200  the actor's counts
===  ===========================================================================

The request id to send back is Serve's (the ``x-request-id`` response header of the
original request), which is what the replica stored with the prediction.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from raywatch.aggregate.joiner import parse_feedback

__all__ = ["is_feedback_path", "parse_items", "submit", "asgi_feedback", "request_feedback",
           "request_feedback_sync", "FeedbackGate", "answer"]

logger = logging.getLogger("raywatch.serve.feedback")

Headers = List[Tuple[str, str]]
_MAX_CLIENTS = 4096  # clients whose rate is remembered; the least recently seen go first


class FeedbackGate:
    """Who may post labels, how often and how much: the token, a token bucket per client
    and the body limit, from ``capture`` settings (:meth:`configure` applies new ones).

    >>> from raywatch.config import MonitorConfig
    >>> cap = MonitorConfig(capture={"feedback_rate_limit": 1, "feedback_burst": 2}).capture
    >>> gate = FeedbackGate(cap, clock=lambda: 100.0)
    >>> [gate.admit("10.0.0.1") for _ in range(3)], gate.admit("10.0.0.2")
    ([None, None, 1.0], None)
    """

    def __init__(self, capture: Any, clock: Callable[[], float] = time.monotonic, max_clients: int = _MAX_CLIENTS):
        self._clock = clock
        self._max_clients = int(max_clients)
        self._buckets: "OrderedDict[str, List[float]]" = OrderedDict()
        self._lock = threading.Lock()
        self.configure(capture)

    def configure(self, capture: Any) -> None:
        token = capture.feedback_token
        # a token that resolved to nothing locks the door rather than opening it
        self.token: Optional[bytes] = None if token is None else token.get_secret_value().encode()
        self.rate = float(capture.feedback_rate_limit)
        self.burst = float(capture.feedback_burst)
        self.max_body = int(capture.feedback_max_body_bytes)

    def admit(self, client: str) -> Optional[float]:
        """None when ``client`` may post now (one token spent), else the seconds to wait."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(client, None)
            if bucket is None:
                bucket = [self.burst, now]
                if len(self._buckets) >= self._max_clients:
                    self._buckets.popitem(last=False)
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            wait = None
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            bucket[0] = tokens
            self._buckets[client] = bucket
        return wait

    def authorized(self, headers: Any) -> bool:
        """Whether the request's ``Authorization: Bearer`` token is the configured one (or
        no token is configured). ``headers`` are ASGI's ``(name, value)`` byte pairs."""
        if self.token is None:
            return True
        given = _header(headers, b"authorization") or b""
        scheme, _, value = given.partition(b" ")
        if scheme.lower() != b"bearer" or not self.token:
            return False
        return hmac.compare_digest(value.strip(), self.token)


def _header(headers: Any, name: bytes) -> Optional[bytes]:
    for key, value in headers or ():
        if isinstance(key, bytes) and key.lower() == name:
            return value if isinstance(value, bytes) else None
    return None


def _client(scope: Dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if isinstance(client, (list, tuple)) and client else "unknown"


def _declared_length(headers: Any) -> Optional[int]:
    value = _header(headers, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def is_feedback_path(mon: Any, path: Optional[str], method: Optional[str]) -> bool:
    cap = mon.config.capture
    route = cap.feedback_route
    return bool(cap.feedback and route and method == "POST" and path and path.rstrip("/").endswith(route.rstrip("/")))


class OtherModel(ValueError):
    """A feedback item names a model that is not this deployment's."""


def parse_items(body: bytes, default_model: str, aliases: Tuple[str, ...] = ()) -> List[Tuple[str, Any, str]]:
    """Items ``(request_id, label, model_key)``, every one for ``default_model`` (the
    deployment's ``app/deployment``; ``aliases`` are other names of it); ValueError when the
    body is malformed, :class:`OtherModel` when an item names another model.

    >>> parse_items(b'{"request_id": "r1", "label": 1}', "app/M")
    [('r1', 1, 'app/M')]
    >>> parse_items(b'[{"request_id": "a", "label": 0, "model": "fraud"}]', "app/M", ("fraud",))
    [('a', 0, 'app/M')]
    >>> parse_items(b'[{"request_id": "a", "label": 0, "model": "app/N"}]', "app/M")
    Traceback (most recent call last):
    ...
    raywatch.serve.feedback.OtherModel: item 0: this route takes labels for model 'app/M' only, not 'app/N'
    >>> parse_items(b'{"label": 1}', "app/M")
    Traceback (most recent call last):
    ...
    ValueError: item 0: 'request_id' is required
    """
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise ValueError("body is not valid JSON") from None
    own = {default_model, *aliases}
    items = parse_feedback(data, None)
    for i, (_, _, model) in enumerate(items):
        if model is not None and model != "" and model not in own:
            raise OtherModel(f"item {i}: this route takes labels for model {default_model!r} only, not {model!r}")
    return [(rid, label, default_model) for rid, label, _ in items]


def _handle(mon: Any) -> Any:
    handle = mon.shipper.handle
    if handle is None:
        handle = mon.transport.resolve()
    return handle


async def submit(mon: Any, body: bytes) -> Tuple[int, Dict[str, Any]]:
    """(HTTP status, JSON answer) for a feedback body that passed the gate."""
    lab = mon.labels
    try:
        items = parse_items(body, lab.model_key, tuple(n for n in (lab.model, lab.deployment) if n))
    except OtherModel as exc:
        return 403, {"error": str(exc)}
    except ValueError as exc:
        return 400, {"error": str(exc)}
    try:
        result = await _handle(mon).feedback_many.remote(items)
    except Exception as exc:
        logger.warning("raywatch could not forward %d feedback labels: %s", len(items), type(exc).__name__)
        return 503, {"error": "the stats actor is not reachable; retry later"}
    return 200, {"received": len(items), **(result if isinstance(result, dict) else {})}


async def answer(mon: Any, scope: Dict[str, Any],
                 read_body: Callable[[int], Awaitable[Optional[bytes]]]) -> Tuple[int, Dict[str, Any], Headers]:
    """(status, JSON answer, extra headers) for a feedback request: the gate's checks in
    order (see the module docstring), then :func:`submit`. ``read_body(limit)`` reads the
    body in chunks and returns None past ``limit`` bytes (or when the client went away)."""
    gate: FeedbackGate = mon.feedback_gate
    wait = gate.admit(_client(scope))
    if wait is not None:
        return 429, {"error": "too many feedback requests from this client; retry later"}, \
            [("retry-after", str(max(1, math.ceil(wait))))]
    headers = scope.get("headers")
    if not gate.authorized(headers):
        return 401, {"error": "feedback needs a token: Authorization: Bearer <capture.feedback_token>"}, \
            [("www-authenticate", 'Bearer realm="raywatch feedback"')]
    limit = gate.max_body
    declared = _declared_length(headers)
    body = None if declared is not None and declared > limit else await read_body(limit)
    if body is None:
        return 413, {"error": f"body too large (limit {limit} bytes) or client disconnected"}, []
    status, out = await submit(mon, body)
    return status, out, []


def _asgi_reader(receive: Any) -> Callable[[int], Awaitable[Optional[bytes]]]:
    async def read(limit: int) -> Optional[bytes]:
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg.get("type") != "http.request":
                return None
            body = msg.get("body") or b""
            size += len(body)
            if size > limit:
                return None
            chunks.append(body)
            if not msg.get("more_body"):
                return b"".join(chunks)

    return read


def _request_reader(request: Any) -> Callable[[int], Awaitable[Optional[bytes]]]:
    async def read(limit: int) -> Optional[bytes]:
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
        except Exception:  # noqa: BLE001 - the client went away (starlette's ClientDisconnect)
            return None
        return b"".join(chunks)

    return read


async def asgi_feedback(mon: Any, scope: Dict[str, Any], receive: Any, send: Any) -> None:
    status, out, extra = await answer(mon, scope, _asgi_reader(receive))
    payload = json.dumps(out).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def request_feedback(mon: Any, request: Any) -> Any:
    """A starlette ``JSONResponse`` for a feedback POST to a plain HTTP handler."""
    from starlette.responses import JSONResponse

    status, out, extra = await answer(mon, request.scope, _request_reader(request))
    return JSONResponse(out, status_code=status, headers=dict(extra) or None)


def request_feedback_sync(mon: Any, request: Any) -> Any:
    """The answer to a feedback POST for a *sync* plain HTTP handler, or None when it cannot
    be given here (the request then goes to the user's code, as without the route).

    A sync handler cannot await the body, so the body is read on the replica's event loop:
    Serve runs sync methods in a worker thread of anyio's thread pool (the default,
    ``RAY_SERVE_RUN_SYNC_IN_THREADPOOL=1``), from which ``anyio.from_thread.run`` runs a
    coroutine on the loop and waits for it. With the thread pool off, the method runs on the
    loop itself, and Serve awaits a coroutine that a method returns, so it gets one.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return request_feedback(mon, request)
    try:
        from anyio import from_thread

        return from_thread.run(request_feedback, mon, request)
    except RuntimeError as exc:  # not a thread anyio started: no loop to read the body on
        logger.warning("raywatch cannot answer a feedback POST outside Serve's thread pool: %s", exc)
        return None
