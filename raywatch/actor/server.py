"""The stats actor's HTTP server (aiohttp, on the actor's own event loop).

Routes:

``GET /metrics``
    Prometheus text exposition of the actor's dedicated registry.
``POST /feedback``
    Ground truth: one JSON object ``{"request_id": ..., "label": ..., "model": ...}``
    (``model`` optional: ``"app/deployment"``), a list of them, or ``{"items": [...]}``.
    Answers ``{"accepted": n, "joined": m}``; 400 with a reason for a malformed body.
``GET /status``
    The query API's answer as JSON (``?model=app/deployment`` for one model).
``GET /healthz``
    ``ok``.

It binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from raywatch.aggregate.data import report_json
from raywatch.aggregate.joiner import parse_feedback

__all__ = ["StatsServer"]

log = logging.getLogger("raywatch.actor.server")

MAX_FEEDBACK_BODY = 8 * 1024 * 1024


class StatsServer:
    """/metrics, /feedback, /status on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        registry: Any,
        feedback: Callable[[List[Tuple[str, Any, Optional[str]]]], Awaitable[Dict[str, int]]],
        status: Callable[[Optional[str]], Awaitable[Dict[str, Any]]],
        host: str = "127.0.0.1",
        port: int = 9464,
    ):
        self.registry = registry
        self._feedback = feedback
        self._status = status
        self.host = host
        self.port = port
        self._runner: Optional[web.AppRunner] = None
        self.bound_port: Optional[int] = None

    @property
    def address(self) -> Optional[str]:
        if self.bound_port is None:
            return None
        return f"http://{self.host}:{self.bound_port}"

    async def start(self) -> str:
        app = web.Application(client_max_size=MAX_FEEDBACK_BODY)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/feedback", self._post_feedback)
        app.router.add_get("/status", self._get_status)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = [s for s in (site._server.sockets if site._server else [])]  # type: ignore[union-attr]
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        log.info("stats actor serving /metrics and /feedback on %s", self.address)
        return self.address  # type: ignore[return-value]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _post_feedback(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            return web.json_response({"error": "body is not valid JSON"}, status=400)
        try:
            items = parse_feedback(body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        result = await self._feedback(items)
        return web.json_response(result)

    async def _get_status(self, request: web.Request) -> web.Response:
        st = await self._status(request.query.get("model"))
        return web.Response(text=report_json(st), content_type="application/json")

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")
