"""Ground truth over the monitored app's own HTTP route.

When ``capture.feedback`` is on, a monitored deployment that receives HTTP (an
``@serve.ingress`` app, or a plain ``__call__(self, request)`` handler, ``async`` or not) answers
``POST <route_prefix><capture.feedback_route>`` (default ``/-/raywatch/feedback``) itself:
the body is ``{"request_id": ..., "label": ...}``, a list of those, or ``{"items": [...]}``
(``model`` optional per item; it defaults to this deployment's ``app/deployment``). The
labels go to the stats actor in one ``feedback_many`` call, which joins them to the
predictions by request id. Answers: 200 with the actor's counts, 400 for a malformed body,
503 when the stats actor cannot be reached. Every other request goes to the user's code
untouched; this route never does.

The request id to send back is Serve's (the ``x-request-id`` response header of the
original request), which is what the replica stored with the prediction.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Dict, List, Optional, Tuple

from raywatch.aggregate.joiner import parse_feedback

__all__ = ["is_feedback_path", "parse_items", "submit", "asgi_feedback", "request_feedback",
           "request_feedback_sync"]

logger = logging.getLogger("raywatch.serve.feedback")

_MAX_BODY = 8 * 1024 * 1024


def is_feedback_path(mon: Any, path: Optional[str], method: Optional[str]) -> bool:
    cap = mon.config.capture
    route = cap.feedback_route
    return bool(cap.feedback and route and method == "POST" and path and path.rstrip("/").endswith(route.rstrip("/")))


def parse_items(body: bytes, default_model: str) -> List[Tuple[str, Any, str]]:
    """Items ``(request_id, label, model_key)``; ValueError when the body is malformed.

    >>> parse_items(b'{"request_id": "r1", "label": 1}', "app/M")
    [('r1', 1, 'app/M')]
    >>> parse_items(b'[{"request_id": "a", "label": 0, "model": "app/N"}]', "app/M")
    [('a', 0, 'app/N')]
    >>> parse_items(b'{"label": 1}', "app/M")
    Traceback (most recent call last):
    ...
    ValueError: item 0: 'request_id' is required
    """
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise ValueError("body is not valid JSON") from None
    return parse_feedback(data, default_model)


def _handle(mon: Any) -> Any:
    handle = mon.shipper.handle
    if handle is None:
        handle = mon.transport.resolve()
    return handle


async def submit(mon: Any, body: bytes) -> Tuple[int, Dict[str, Any]]:
    """(HTTP status, JSON answer) for a feedback body."""
    try:
        items = parse_items(body, mon.labels.model_key)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    try:
        result = await _handle(mon).feedback_many.remote(items)
    except Exception as exc:
        logger.warning("raywatch could not forward %d feedback labels: %s", len(items), type(exc).__name__)
        return 503, {"error": "the stats actor is not reachable; retry later"}
    return 200, {"received": len(items), **(result if isinstance(result, dict) else {})}


async def _read_body(receive: Any) -> Optional[bytes]:
    """The whole request body; None when it is too large or the client went away."""
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg.get("type") != "http.request":
            return None
        body = msg.get("body") or b""
        size += len(body)
        if size > _MAX_BODY:
            return None
        chunks.append(body)
        if not msg.get("more_body"):
            return b"".join(chunks)


async def asgi_feedback(mon: Any, scope: Dict[str, Any], receive: Any, send: Any) -> None:
    body = await _read_body(receive)
    if body is None:
        status, answer = 413, {"error": f"body too large (limit {_MAX_BODY} bytes) or client disconnected"}
    else:
        status, answer = await submit(mon, body)
    payload = json.dumps(answer).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


async def request_feedback(mon: Any, request: Any) -> Any:
    """A starlette ``JSONResponse`` for a feedback POST to a plain HTTP handler."""
    from starlette.responses import JSONResponse

    body = await request.body()
    if len(body) > _MAX_BODY:
        return JSONResponse({"error": "body too large"}, status_code=413)
    status, answer = await submit(mon, body)
    return JSONResponse(answer, status_code=status)


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
