"""E-mail over SMTP with STARTTLS or implicit TLS (``smtplib``).

One message per notification: subject ``[raywatch] [FIRING:2] HighLatency (fraud)``, a
plain-text body and an HTML alternative. STARTTLS is required by default; with
``implicit_tls`` (the default for port 465, SMTPS, RFC 8314) the connection is TLS from its
first byte. Either way the server's certificate is verified (``ca_file`` adds a trust anchor, ``tls_verify: false`` turns
verification off). The password is a secret.

Each attempt has an overall deadline, ``timeout``: connecting, the TLS handshake and the
whole SMTP exchange must be done by then (a server that answers one byte at a time is cut
off, as :func:`~raywatch.sinks.base.http_post_json` cuts off an HTTP receiver).

Errors: connection problems, timeouts and SMTP 4xx replies are retried; 5xx replies,
refused recipients, failed authentication and an untrusted certificate are not.
"""

from __future__ import annotations

import html
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from raywatch.sinks.base import PermanentError, Sink, TransientError, _Deadline

__all__ = ["EmailSink", "build_message", "implicit_tls"]


def implicit_tls(cfg: Any) -> bool:
    """Whether to speak TLS from the first byte: ``implicit_tls`` when set, else port 465."""
    return int(cfg.port) == 465 if cfg.implicit_tls is None else bool(cfg.implicit_tls)


def build_message(n: Any, *, sender: str, to: list, subject_prefix: str = "[raywatch]") -> EmailMessage:
    """The e-mail for one notification.

    >>> from raywatch.sinks.notification import Notification
    >>> n = Notification.build("mail", "g", {"alertname": "Down"}, [{"status": "firing",
    ...     "labels": {"alertname": "Down", "severity": "critical"}, "annotations": {}, "fingerprint": "f"}])
    >>> m = build_message(n, sender="rw@example.com", to=["ops@example.com"])
    >>> m["Subject"], m.get_content_type()
    ('[raywatch] [FIRING:1] Down', 'multipart/alternative')
    """
    msg = EmailMessage()
    msg["Subject"] = f"{subject_prefix} {n.title()}".strip()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(n.created_at, usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=n.id[:16], domain="raywatch")
    msg["X-Raywatch-Group"] = n.group_hash
    msg.set_content(n.text() + "\n")
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(a["status"]), html.escape(a["labels"].get("severity", "")),
            html.escape((a.get("annotations") or {}).get("summary") or a["labels"].get("alertname", "")),
            html.escape(", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items()) if k not in ("alertname", "severity"))))
        for a in n.alerts)
    msg.add_alternative(
        f"<html><body><h3>{html.escape(n.title())}</h3><table border='1' cellpadding='4'>"
        f"<tr><th>status</th><th>severity</th><th>summary</th><th>labels</th></tr>{rows}</table></body></html>",
        subtype="html")
    return msg


class _Watched:
    """An SMTP client whose socket the attempt's deadline shuts down when it passes (from the
    greeting on: the client is registered before it connects)."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any):
        deadline.conn = self
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]


class _DeadlineSMTP(_Watched, smtplib.SMTP):
    pass


class _DeadlineSMTPSSL(_Watched, smtplib.SMTP_SSL):
    pass


class EmailSink(Sink):
    type = "email"

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.cfg.ca_file) if self.cfg.ca_file else ssl.create_default_context()
        if not self.cfg.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def send(self, notification) -> None:
        c = self.cfg
        msg = build_message(notification, sender=c.from_, to=list(c.to), subject_prefix=c.subject_prefix)
        deadline = _Deadline(float(c.timeout)).start()
        try:
            implicit = implicit_tls(c)
            if implicit:
                client = _DeadlineSMTPSSL(c.host, int(c.port), timeout=float(c.timeout), context=self._context(),
                                          deadline=deadline)
            else:
                client = _DeadlineSMTP(c.host, int(c.port), timeout=float(c.timeout), deadline=deadline)
            with client as smtp:
                smtp.ehlo()
                if c.starttls and not implicit:
                    if not smtp.has_extn("starttls"):
                        raise PermanentError("the SMTP server does not offer STARTTLS (set starttls: false to send in clear)")
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if c.username:
                    smtp.login(c.username, c.password.get_secret_value() if c.password is not None else "")
                refused = smtp.send_message(msg)
                if refused:
                    raise PermanentError(f"recipients refused: {', '.join(sorted(refused))}")
        except (PermanentError, TransientError):
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"SMTP authentication failed ({exc.smtp_code})", status=exc.smtp_code) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"recipients refused: {', '.join(sorted(exc.recipients))}") from None
        except smtplib.SMTPResponseException as exc:
            answer = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            err = TransientError if 400 <= exc.smtp_code < 500 else PermanentError
            raise err(f"SMTP {exc.smtp_code}: {answer[:200]}", status=exc.smtp_code, answer=answer) from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(f"TLS certificate not accepted: {exc.verify_message}") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, socket.timeout, TimeoutError,
                ConnectionError, ssl.SSLError, OSError) as exc:
            if deadline.fired or isinstance(exc, (socket.timeout, TimeoutError)):
                raise TransientError(f"SMTP timed out after {deadline.seconds:g}s (no complete exchange within "
                                     "the sink's timeout)") from None
            raise TransientError(f"SMTP connection error: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}") from None
        except smtplib.SMTPException as exc:
            if deadline.fired:
                raise TransientError(f"SMTP timed out after {deadline.seconds:g}s") from None
            raise TransientError(f"SMTP error: {type(exc).__name__}") from None
        finally:
            deadline.cancel()
