"""The one small interface every sink implements, and the errors that drive retries.

A sink turns a :class:`~raywatch.sinks.notification.Notification` into one request to
its destination. ``send`` returns when the destination has accepted it and otherwise
raises one of:

* :class:`TransientError`: timeouts, connection errors, 5xx; retried with backoff;
* :class:`RetryAfter`: a 429; retried after ``retry_after`` seconds;
* :class:`PermanentError`: any other refusal (4xx, a redirect, an invalid URL); not
  retried, logged with the receiver's answer, written to the dead-letter file.

Sinks hold their secrets in ``SecretStr`` and must never put them in an exception's
message; :meth:`Sink.redact` is applied to every message the delivery layer logs or stores,
as a second line of defence.

>>> class Stdout(Sink):
...     type = "stdout"
...     def send(self, notification):
...         pass
>>> from pydantic import SecretStr
>>> from raywatch.config import LogSinkConfig
>>> s = Stdout(LogSinkConfig(name="x", type="log"))
>>> s.name, s.redact("token abc"), classify_status(503, {}, "").__class__.__name__
('x', 'token abc', 'TransientError')
"""

from __future__ import annotations

import abc
import email.utils
import functools
import heapq
import http.client
import json
import logging
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from pydantic import BaseModel, SecretStr

__all__ = [
    "Sink", "DeliveryError", "TransientError", "RetryAfter", "PermanentError",
    "http_post_json", "classify_status", "parse_retry_after", "secret_values", "redaction_fragments",
]

_ANSWER_MAX = 500
_BODY_MAX = 65536  # bytes of an answer read (and kept, up to _ANSWER_MAX, for the log)
MASKED = "**********"  # what pydantic writes for a SecretStr in JSON
log = logging.getLogger("raywatch.sinks.base")


class DeliveryError(Exception):
    """A notification was not accepted. ``status`` and ``answer`` are the receiver's."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: Optional[int] = None, answer: str = "",
                 retry_after: Optional[float] = None):
        super().__init__(message)
        self.status = status
        self.answer = answer[:_ANSWER_MAX]
        self.retry_after = retry_after


class TransientError(DeliveryError):
    retryable = True


class RetryAfter(TransientError):
    pass


class PermanentError(DeliveryError):
    retryable = False


def parse_retry_after(value: Optional[str], default: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    >>> parse_retry_after("3"), parse_retry_after(None, 2.0), parse_retry_after("soon", 2.0)
    (3.0, 2.0, 2.0)
    """
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if dt is None:
        return default
    return max(0.0, dt.timestamp() - time.time())


def classify_status(status: int, headers: Mapping[str, str], answer: str) -> Optional[DeliveryError]:
    """The error for an HTTP status (None for 2xx)."""
    if 200 <= status < 300:
        return None
    answer = answer.strip()
    if status == 429:
        ra = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
        return RetryAfter(f"rate limited (HTTP 429), retry after {ra:g}s", status=status, answer=answer, retry_after=ra)
    if status >= 500 or status == 408:
        return TransientError(f"HTTP {status} from receiver: {answer[:200]}", status=status, answer=answer)
    return PermanentError(f"HTTP {status} from receiver: {answer[:200]}", status=status, answer=answer)


class _Reaper:
    """One daemon thread for every attempt's deadline (a heap of them), so that an attempt
    starts no thread of its own."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: List[Tuple[float, int, "_Deadline"]] = []
        self._seq = 0
        self._thread: Optional[threading.Thread] = None

    def add(self, d: "_Deadline") -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (d.expires, self._seq, d))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="raywatch-sink-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is d:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(5.0)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                left = self._heap[0][0] - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                _, _, d = heapq.heappop(self._heap)
            d.fire()


_REAPER = _Reaper()


class _Deadline:
    """An attempt's overall deadline: when it passes, the connection's socket is shut down,
    so that whatever read or write is blocked on it returns at once. A per-read socket
    timeout alone lets a receiver that trickles one byte at a time hold a worker for ever."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.expires = time.monotonic() + self.seconds
        self.fired = False
        self.done = False
        self.conn: Any = None
        self._lock = threading.Lock()

    def left(self) -> float:
        return max(0.001, self.expires - time.monotonic())

    def start(self) -> "_Deadline":
        _REAPER.add(self)
        return self

    def cancel(self) -> None:
        with self._lock:
            self.done = True
            self.conn = None

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = self.done = True
            sock = getattr(self.conn, "sock", None)
            if sock is not None:
                try:  # the plain socket's shutdown, also under TLS: blocked reads and writes return
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


class _DeadlineMixin:
    """An ``http.client`` connection bound to the :class:`_Deadline` its request carries:
    socket operations time out at what is left of it, and the deadline can shut the socket
    down."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any):
        kwargs["timeout"] = min(float(kwargs.get("timeout") or deadline.seconds), deadline.left())
        super().__init__(*args, **kwargs)
        self._deadline = deadline
        deadline.conn = self

    def connect(self) -> None:
        self.timeout = min(self.timeout, self._deadline.left())
        super().connect()


class _DeadlineHTTPConnection(_DeadlineMixin, http.client.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineMixin, http.client.HTTPSConnection):
    pass


class _DeadlineRequest(urllib.request.Request):
    deadline: _Deadline


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: _DeadlineRequest) -> Any:
        return self.do_open(functools.partial(_DeadlineHTTPConnection, deadline=req.deadline), req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: _DeadlineRequest) -> Any:
        return self.do_open(functools.partial(_DeadlineHTTPSConnection, deadline=req.deadline), req,
                            context=self._context)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would turn the POST into a GET and send our headers
    (``Authorization``, API keys) to whatever host the ``Location`` names. A 3xx answer
    becomes an HTTPError, classified as a permanent error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_openers: Dict[Tuple[int, Tuple[Tuple[str, str], ...]], urllib.request.OpenerDirector] = {}
_openers_lock = threading.Lock()


def _opener(context: Optional[ssl.SSLContext]) -> urllib.request.OpenerDirector:
    """The opener for a TLS context, built once per context and proxy settings (the
    environment's ``*_proxy`` variables are read at each call, as urllib does)."""
    proxies = tuple(sorted(urllib.request.getproxies().items()))
    key = (id(context), proxies)
    with _openers_lock:
        op = _openers.get(key)
        if op is None:
            if len(_openers) > 32:
                _openers.clear()
            op = _openers[key] = urllib.request.build_opener(
                urllib.request.ProxyHandler(dict(proxies)), _NoRedirects(), _DeadlineHTTPHandler(),
                _DeadlineHTTPSHandler(context=context))
            op._raywatch_context = context  # type: ignore[attr-defined]  # keeps id(context) from being reused
        return op


_REDIRECT = ("the receiver answered with a redirect (HTTP {status}); redirects are not followed, so that no "
             "credential reaches another host: set the sink's address to the final one")
_INVALID_URL = "invalid URL (check the sink's url; it is not shown because it may hold a secret)"


def _timed_out(deadline: _Deadline) -> TransientError:
    return TransientError(f"timed out after {deadline.seconds:g}s (no complete answer within the sink's timeout)")


def http_post_json(url: str, body: Any, *, timeout: float, headers: Optional[Mapping[str, str]] = None,
                   context: Optional[ssl.SSLContext] = None) -> Tuple[int, str]:
    """POST ``body`` as JSON; returns (status, answer) for 2xx or raises a DeliveryError.

    ``timeout`` is the attempt's overall deadline: connecting, sending and reading the whole
    answer (its first 64 KiB) must all be done by then. Redirects are not followed (3xx is a
    :class:`PermanentError`); protocol errors (a malformed status line, a connection closed
    before or during the answer, a body cut short) are :class:`TransientError`. The URL
    (which may carry a secret, as Slack webhook URLs do) never appears in errors.
    """
    data = json.dumps(body, separators=(",", ":"), default=str).encode()
    hdrs = {"Content-Type": "application/json", "User-Agent": "raywatch"}
    hdrs.update(headers or {})
    try:
        req = _DeadlineRequest(url, data=data, headers=hdrs, method="POST")
    except ValueError:
        raise PermanentError(_INVALID_URL) from None
    opener = _opener(context)
    deadline = req.deadline = _Deadline(timeout).start()
    try:
        with opener.open(req, timeout=deadline.left()) as resp:
            status = resp.status
            answer = resp.read(_BODY_MAX)
            if len(answer) < _BODY_MAX and getattr(resp, "length", None):
                raise http.client.IncompleteRead(answer, resp.length)
            return status, answer.decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            raise PermanentError(_REDIRECT.format(status=exc.code), status=exc.code) from None
        try:
            answer = exc.read(_BODY_MAX).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the answer is only informative
            answer = ""
        raise classify_status(exc.code, exc.headers or {}, answer) from None
    except (socket.timeout, TimeoutError):
        raise _timed_out(deadline) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if deadline.fired or isinstance(reason, (socket.timeout, TimeoutError)):
            raise _timed_out(deadline) from None
        if isinstance(reason, str):  # urllib's own refusals: unknown scheme, no host
            raise PermanentError(_INVALID_URL) from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise PermanentError(f"TLS certificate not accepted: {reason.verify_message}") from None
        if isinstance(reason, http.client.InvalidURL):
            raise PermanentError(_INVALID_URL) from None
        raise TransientError(f"connection error: {type(reason).__name__}: {getattr(reason, 'strerror', None) or reason}") from None
    except http.client.InvalidURL:
        raise PermanentError(_INVALID_URL) from None
    except (http.client.HTTPException, ssl.SSLError, ConnectionError, OSError) as exc:
        if deadline.fired:
            raise _timed_out(deadline) from None
        # a malformed status line, RemoteDisconnected, IncompleteRead, a TLS record cut short:
        # the receiver's side of the exchange broke, which may not happen again
        what = type(exc).__name__
        if isinstance(exc, http.client.HTTPException):
            raise TransientError(f"protocol error: {what} (the receiver's answer was not valid HTTP)") from None
        raise TransientError(f"connection error: {what}: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        deadline.cancel()


def secret_values(cfg: BaseModel) -> List[str]:
    """Every secret string inside a config model (for redaction)."""
    out: List[str] = []

    def visit(v: Any) -> None:
        if isinstance(v, SecretStr):
            s = v.get_secret_value()
            if s:
                out.append(s)
        elif isinstance(v, BaseModel):
            for name in type(v).model_fields:
                visit(getattr(v, name))
        elif isinstance(v, Mapping):
            for x in v.values():
                visit(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                visit(x)

    visit(cfg)
    return out


_FRAGMENT_MIN = 6  # shorter parts of a secret (a path such as "/a") are not masked on their own
_WORD_RE = re.compile(r"^[a-z]+(?:[-_][a-z]+)*$")


def _token_like(part: str) -> bool:
    """A path segment or word that may be (part of) a credential: long, or mixing digits or
    capitals in; plain words of a URL (``services``, ``webhooks``) are not masked alone."""
    if len(part) >= 16:
        return True
    return len(part) >= 8 and not _WORD_RE.match(part)


def redaction_fragments(secret: str) -> List[str]:
    """What :meth:`Sink.redact` masks for one secret value, longest first: the value itself;
    for a URL, its path (and each tail of it from a token-like segment on), its query, each
    query value and the password of its user part; for other values, each token-like word;
    and each of those percent-encoded as well. A receiver that echoes the path it was called
    on (``no such hook: /services/T0/B0/XYZ``) then leaks no token into logs, errors or dead
    letters.

    >>> [f for f in redaction_fragments("https://hooks.example/services/T0/B0/AbCdEf123456?sig=s1gnature")
    ...  if "%" not in f][1:]
    ['/services/T0/B0/AbCdEf123456', 'services/T0/B0/AbCdEf123456', 'sig=s1gnature', 'AbCdEf123456', 's1gnature']
    >>> redaction_fragments("Bearer abc123XYZ789")
    ['Bearer abc123XYZ789', 'abc123XYZ789']
    """
    out = {secret}
    parts: List[str] = []
    if "://" in secret:
        try:
            u = urllib.parse.urlsplit(secret)
        except ValueError:
            u = None
        if u is not None and u.netloc:
            segments = [x for x in u.path.split("/") if x]
            parts += [u.path, u.path.strip("/"), u.query, u.fragment, u.password or ""]
            for i, seg in enumerate(segments):
                if _token_like(urllib.parse.unquote(seg)):
                    parts.append("/".join(segments[i:]))
                    parts.append(seg)
            for key, value in urllib.parse.parse_qsl(u.query, keep_blank_values=True):
                parts += [f"{key}={value}", value]
    else:
        parts += [w for w in secret.split() if _token_like(w)]
    for part in parts:
        if len(part) >= _FRAGMENT_MIN and part != secret:
            out.add(part)
            for enc in (urllib.parse.quote(part, safe=""), urllib.parse.quote(part)):
                if enc != part:
                    out.add(enc)
    return sorted(out, key=lambda x: (-len(x), x))


class Sink(abc.ABC):
    """A destination for notifications. Subclasses set ``type`` and implement ``send``.

    ``direct = True`` marks sinks that receive every alert change straight from the
    engine instead of through the routing tree (Alertmanager, which groups on its own).
    ``acknowledged = False`` marks sinks whose ``send`` returning means only that the
    message was handed to a transport that confirms nothing (DogStatsD over UDP): their
    notifications are counted as best effort, never as sent.
    """

    type: ClassVar[str] = ""
    direct: ClassVar[bool] = False
    acknowledged: bool = True

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.name: str = cfg.name
        values = secret_values(cfg)
        self._secrets = sorted({f for v in values if v != MASKED for f in redaction_fragments(v)},
                               key=lambda x: (-len(x), x))
        if MASKED in values:
            log.error("sink %s: a secret reads %r: the configuration was serialized with its secrets masked "
                      "(model_dump_json) and cannot deliver; pass the configuration itself or ${ENV_VAR} "
                      "references", self.name, MASKED)

    @abc.abstractmethod
    def send(self, notification: Any) -> None:
        """Deliver one notification or raise a :class:`DeliveryError`."""

    def close(self) -> None:
        """Release connections; called once when the engine closes."""

    def redact(self, text: str) -> str:
        """``text`` with every secret of the sink masked, and the parts of a secret URL that a
        receiver may echo on their own (see :func:`redaction_fragments`)."""
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "***")
        return text

    def __repr__(self) -> str:  # never shows secrets
        return f"<{type(self).__name__} {self.name!r}>"
