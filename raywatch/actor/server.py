"""The stats actor's HTTP listeners (aiohttp, on the actor's own event loop).

Two listeners, so that opening one to a remote Prometheus does not open the other:

the metrics listener (``actor.metrics_host:metrics_port``)
    ``GET /metrics`` — Prometheus text exposition of the actor's dedicated registry;
    ``GET /healthz`` — ``ok``.
the API listener (``actor.api_host:api_port``)
    ``GET /status`` — the query API's answer as JSON (``?model=app/deployment`` for one model);
    ``POST /feedback`` and ``POST /feedback/{app}/{deployment}`` — ground truth: one JSON
    object ``{"request_id": ..., "label": ..., "model": ...}`` (``model``: ``"app/deployment"``),
    a list of them, or ``{"items": [...]}``; answers ``{"accepted": n, "joined": m,
    "refused": {reason: k}}``; ``GET /healthz``.

The API listener's doors:

* **Tokens.** ``Authorization: Bearer <token>``, compared in constant time
  (:func:`hmac.compare_digest`); a missing or wrong token is 401. ``api_token`` opens
  both routes for every model; a ``feedback_tokens`` entry opens ``/feedback`` for its
  models only (``/status`` is 403 for it). Without any token configured the listener
  must be bound to loopback: :func:`check_doors` refuses to start otherwise.
* **Models.** Labels are accepted only for models the actor knows (404 naming the others).
  A body naming a model the caller may not label — another than the one in the path, or
  one outside its token's models — is refused whole with 403. An item without a model
  gets the path's model (or the token's, when it names exactly one).
* **Bounds.** A body is read in chunks and refused (413) as soon as it passes
  ``api_max_body_bytes`` (a declared ``Content-Length`` over it is refused before reading);
  each label is bounded in bytes and distinct values by the core (refused ones are counted
  and reported back by reason).
* **Rate.** Each client (by address) gets ``api_rate_limit`` requests a second with bursts
  of ``api_rate_burst``; beyond it 429 with ``Retry-After``.
* **TLS.** With ``tls_cert_file`` and ``tls_key_file`` both listeners speak HTTPS.
* **Durability.** A label is acknowledged only once journaled: a failed journal write is
  503 with ``Retry-After`` (send again).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import ssl
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from raywatch.aggregate.data import report_json
from raywatch.aggregate.joiner import parse_feedback
from raywatch.aggregate.journal import StoreWriteError
from raywatch.config.aggregate import ActorConfig, is_loopback

__all__ = ["StatsServer", "RateLimiter", "check_doors", "tls_context", "TokenTable"]

log = logging.getLogger("raywatch.actor.server")

CHUNK = 64 * 1024
SCOPE = web.RequestKey("raywatch_scope", object)  # the models a request's token may label (None: any)
Items = List[Tuple[str, Any, Optional[str]]]


def check_doors(a: ActorConfig) -> None:
    """Refuse (ValueError, saying what to set) an API listener beyond loopback without a
    token, a token whose ``${ENV}`` variable is unset here, or half a TLS setting."""
    if a.api_port is None:
        return
    tokens = ([a.api_token] if a.api_token is not None else []) + [t.token for t in a.feedback_tokens]
    if not is_loopback(a.api_host) and not tokens:
        raise ValueError(f"actor.api_host {a.api_host!r} is beyond 127.0.0.1 and no token is configured: set "
                         "actor.api_token (e.g. ${RAYWATCH_API_TOKEN}) or actor.feedback_tokens, or bind 127.0.0.1")
    for t in tokens:
        if not t.get_secret_value():
            ref = getattr(t, "reference", None) or "a token"
            raise ValueError(f"actor API token {ref} resolves to an empty value in the stats actor's process "
                             "(is the environment variable set where the actor runs?)")
    if (a.tls_cert_file is None) != (a.tls_key_file is None):
        raise ValueError("actor.tls_cert_file and actor.tls_key_file go together")


def tls_context(a: ActorConfig) -> Optional[ssl.SSLContext]:
    if not a.tls_cert_file:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.tls_cert_file, a.tls_key_file)
    return ctx


class TokenTable:
    """Who a bearer token is: ``None`` (everything, the ``api_token``) or the set of models
    a feedback token may label. :meth:`lookup` compares every token in constant time."""

    def __init__(self, full: Optional[str], scoped: Sequence[Tuple[str, Sequence[str]]] = ()):
        self._full = full.encode() if full else None
        self._scoped = [(t.encode(), frozenset(models)) for t, models in scoped if t]

    @classmethod
    def of(cls, a: ActorConfig) -> "TokenTable":
        return cls(a.api_token.get_secret_value() if a.api_token is not None else None,
                   [(t.token.get_secret_value(), t.models) for t in a.feedback_tokens])

    @property
    def required(self) -> bool:
        return self._full is not None or bool(self._scoped)

    def lookup(self, presented: Optional[str]) -> Tuple[bool, Optional[frozenset]]:
        """``(known, scope)``: scope None is every model."""
        given = (presented or "").encode()
        known, scope = False, None
        if self._full is not None and hmac.compare_digest(given, self._full):
            known = True
        for token, models in self._scoped:  # every entry is compared: no early exit on a match
            if hmac.compare_digest(given, token) and not known:
                known, scope = True, models
        return known, scope


class RateLimiter:
    """A token bucket per client: ``rate`` requests a second, bursts of ``burst``; at most
    ``max_clients`` buckets kept (the least recently used forgotten).

    >>> t = [0.0]
    >>> r = RateLimiter(rate=1.0, burst=2, clock=lambda: t[0])
    >>> r.take("a"), r.take("a"), r.take("a"), r.take("b")
    (0.0, 0.0, 1.0, 0.0)
    >>> t[0] = 1.0; r.take("a")
    0.0
    """

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.max_clients, self.clock = float(rate), float(burst), int(max_clients), clock
        self._buckets: "OrderedDict[str, Tuple[float, float]]" = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the request may go now; else the seconds until it may."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class _Listener:
    def __init__(self, app: web.Application, host: str, port: int, ssl_context: Optional[ssl.SSLContext]):
        self.app, self.host, self.port, self.ssl = app, host, port, ssl_context
        self.runner: Optional[web.AppRunner] = None
        self.bound_port: Optional[int] = None

    @property
    def address(self) -> Optional[str]:
        if self.bound_port is None:
            return None
        scheme = "https" if self.ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.bound_port}"

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True, ssl_context=self.ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.runner = runner
        sockets = [s for s in (site._server.sockets if site._server else [])]  # type: ignore[union-attr]
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class StatsServer:
    """The metrics listener and the API listener (see the module docstring).

    ``feedback(items, scope)`` records labels (``scope``: the models the caller may label,
    None for any) and returns the answer; ``status(model)`` the status; ``models()`` the
    known models' labels by key. ``api_port`` None: no API listener.
    """

    def __init__(
        self,
        registry: Any,
        feedback: Callable[[Items], Awaitable[Dict[str, Any]]],
        status: Callable[[Optional[str]], Awaitable[Dict[str, Any]]],
        host: str = "127.0.0.1",
        port: int = 9464,
        *,
        api_host: str = "127.0.0.1",
        api_port: Optional[int] = 0,
        tokens: Optional[TokenTable] = None,
        models: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
        rate_limit: float = 20.0,
        rate_burst: int = 40,
        max_body: int = 1024 * 1024,
        ssl_context: Optional[ssl.SSLContext] = None,
    ):
        self.registry = registry
        self._feedback = feedback
        self._status = status
        self.tokens = tokens or TokenTable(None)
        self._models = models
        self.limiter = RateLimiter(rate_limit, rate_burst)
        self.max_body = int(max_body)
        if not self.tokens.required and api_port is not None and not is_loopback(api_host):
            raise ValueError(f"the API listener on {api_host!r} (beyond 127.0.0.1) needs a token")
        metrics = web.Application()
        metrics.router.add_get("/metrics", self._metrics)
        metrics.router.add_get("/healthz", self._healthz)
        self.metrics = _Listener(metrics, host, port, ssl_context)
        self.api: Optional[_Listener] = None
        if api_port is not None:
            api = web.Application(middlewares=[self._doors], client_max_size=self.max_body)
            api.router.add_get("/status", self._get_status)
            api.router.add_post("/feedback", self._post_feedback)
            api.router.add_post("/feedback/{app}/{deployment}", self._post_feedback)
            api.router.add_get("/healthz", self._healthz)
            self.api = _Listener(api, api_host, api_port, ssl_context)
        self.host, self.port = host, port

    # ------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> Optional[str]:
        """The metrics listener's address (``http://host:port``)."""
        return self.metrics.address

    @property
    def bound_port(self) -> Optional[int]:
        return self.metrics.bound_port

    @property
    def api_address(self) -> Optional[str]:
        return self.api.address if self.api is not None else None

    @property
    def started(self) -> bool:
        """Whether every listener is up."""
        return self.metrics.runner is not None and (self.api is None or self.api.runner is not None)

    async def start(self) -> str:
        """Start the listeners not up yet (each on its own: a taken API port leaves /metrics
        served); raises the first listener's failure."""
        if self.metrics.runner is None:
            await self.metrics.start()
        if self.api is not None and self.api.runner is None:
            await self.api.start()
        log.info("stats actor serving /metrics on %s and /status, /feedback on %s", self.address, self.api_address)
        return self.address  # type: ignore[return-value]

    async def stop(self) -> None:
        await self.metrics.stop()
        if self.api is not None:
            await self.api.stop()

    # ------------------------------------------------------------------ metrics listener
    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # ------------------------------------------------------------------ API listener
    @web.middleware
    async def _doors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if request.path == "/healthz":
            return await handler(request)
        wait = self.limiter.take(request.remote or "?")
        if wait > 0:
            return web.json_response({"error": "too many requests"}, status=429,
                                     headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if self.tokens.required:
            auth = request.headers.get("Authorization", "")
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            known, scope = self.tokens.lookup(given)
            if not known:
                return web.json_response({"error": "a valid bearer token is required"}, status=401,
                                         headers={"WWW-Authenticate": 'Bearer realm="raywatch"'})
            request[SCOPE] = scope
        else:
            request[SCOPE] = None
        return await handler(request)

    async def _get_status(self, request: web.Request) -> web.Response:
        if request[SCOPE] is not None:
            return web.json_response({"error": "this token may only post /feedback"}, status=403)
        st = await self._status(request.query.get("model"))
        return web.Response(text=report_json(st), content_type="application/json")

    async def _read_body(self, request: web.Request) -> Optional[bytes]:
        """The body, read in chunks; None as soon as it passes the limit."""
        if request.content_length is not None and request.content_length > self.max_body:
            return None
        parts, size = [], 0
        async for chunk in request.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > self.max_body:
                return None
            parts.append(chunk)
        return b"".join(parts)

    def _keys(self, names: Set[str], known: Mapping[str, Mapping[str, Any]]) -> Set[str]:
        """Model keys a scope names (a scope entry is a key or a model name)."""
        out = set()
        for name in names:
            out |= {k for k, labels in known.items() if k == name or labels.get("model") == name}
        return out

    async def _post_feedback(self, request: web.Request) -> web.Response:
        body = await self._read_body(request)
        if body is None:
            return web.json_response({"error": f"body larger than {self.max_body} bytes"}, status=413)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            return web.json_response({"error": "body is not valid JSON"}, status=400)
        known = self._models()
        scope: Optional[frozenset] = request[SCOPE]
        allowed: Optional[Set[str]] = None if scope is None else self._keys(set(scope), known)
        path_model = None
        if "app" in request.match_info:
            path_model = f"{request.match_info['app']}/{request.match_info['deployment']}"
            allowed = {path_model} if allowed is None else allowed & {path_model}
            if path_model not in known:
                return web.json_response({"error": f"unknown model {path_model!r}"}, status=404)
            if not allowed:
                return web.json_response({"error": f"this token may not label {path_model!r}"}, status=403)
        default = path_model or (next(iter(allowed)) if allowed is not None and len(allowed) == 1 else None)
        try:
            items = parse_feedback(data, default_model=default)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        named = {mk for _, _, mk in items if mk is not None}
        if allowed is not None:
            if any(mk is None for _, _, mk in items):
                return web.json_response({"error": "name the model of each label (this token labels several)"},
                                         status=400)
            denied = sorted(named - allowed)
            if denied:
                return web.json_response({"error": f"this caller may not label {', '.join(denied)}"}, status=403)
        unknown = sorted(named - set(known))
        if unknown:
            return web.json_response({"error": f"unknown model(s): {', '.join(unknown)}", "known": sorted(known)},
                                     status=404)
        try:
            result = await self._feedback(items)
        except StoreWriteError as exc:
            return web.json_response({"error": str(exc)}, status=503, headers={"Retry-After": "1"})
        return web.json_response(result)
