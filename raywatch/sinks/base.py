"""The one small interface every sink implements, and the errors that drive retries.

A sink turns a :class:`~raywatch.sinks.notification.Notification` into one request to
its destination. ``send`` returns when the destination has accepted it and otherwise
raises one of:

* :class:`TransientError`: timeouts, connection errors, 5xx; retried with backoff;
* :class:`RetryAfter`: a 429; retried after ``retry_after`` seconds;
* :class:`PermanentError`: any other refusal (4xx); not retried, logged with the
  receiver's answer, written to the dead-letter file.

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
import json
import logging
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Any, ClassVar, List, Mapping, Optional, Tuple

from pydantic import BaseModel, SecretStr

__all__ = [
    "Sink", "DeliveryError", "TransientError", "RetryAfter", "PermanentError",
    "http_post_json", "classify_status", "parse_retry_after", "secret_values",
]

_ANSWER_MAX = 500
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


def http_post_json(url: str, body: Any, *, timeout: float, headers: Optional[Mapping[str, str]] = None,
                   context: Optional[ssl.SSLContext] = None) -> Tuple[int, str]:
    """POST ``body`` as JSON; returns (status, answer) for 2xx or raises a DeliveryError.

    The URL (which may carry a secret, as Slack webhook URLs do) never appears in errors.
    """
    data = json.dumps(body, separators=(",", ":"), default=str).encode()
    hdrs = {"Content-Type": "application/json", "User-Agent": "raywatch"}
    hdrs.update(headers or {})
    try:
        req = urllib.request.Request(url, data=data, headers=hdrs, method="POST")
    except ValueError:
        raise PermanentError("invalid URL (check the sink's url; it is not shown because it may hold a secret)") from None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        try:
            answer = exc.read(65536).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the answer is only informative
            answer = ""
        err = classify_status(exc.code, exc.headers or {}, answer)
        raise err from None
    except (socket.timeout, TimeoutError):
        raise TransientError(f"timed out after {timeout:g}s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise TransientError(f"timed out after {timeout:g}s") from None
        if isinstance(reason, str):  # urllib's own refusals: unknown scheme, no host
            raise PermanentError("invalid URL (check the sink's url; it is not shown because it may hold a secret)") from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise PermanentError(f"TLS certificate not accepted: {reason.verify_message}") from None
        raise TransientError(f"connection error: {type(reason).__name__}: {getattr(reason, 'strerror', None) or reason}") from None
    except (ConnectionError, OSError) as exc:
        raise TransientError(f"connection error: {type(exc).__name__}: {exc.strerror or exc}") from None


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


class Sink(abc.ABC):
    """A destination for notifications. Subclasses set ``type`` and implement ``send``.

    ``direct = True`` marks sinks that receive every alert change straight from the
    engine instead of through the routing tree (Alertmanager, which groups on its own).
    """

    type: ClassVar[str] = ""
    direct: ClassVar[bool] = False

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.name: str = cfg.name
        self._secrets = sorted(secret_values(cfg), key=len, reverse=True)
        if MASKED in self._secrets:
            log.error("sink %s: a secret reads %r: the configuration was serialized with its secrets masked "
                      "(model_dump_json) and cannot deliver; pass the configuration itself or ${ENV_VAR} "
                      "references", self.name, MASKED)

    @abc.abstractmethod
    def send(self, notification: Any) -> None:
        """Deliver one notification or raise a :class:`DeliveryError`."""

    def close(self) -> None:
        """Release connections; called once when the engine closes."""

    def redact(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "***")
        return text

    def __repr__(self) -> str:  # never shows secrets
        return f"<{type(self).__name__} {self.name!r}>"
