import logging

import pytest

from alert_receivers import SMTPServer
from sink_helpers import FAST_RETRY, alert, notification
from raywatch.alerts.delivery import deliver_with_retries
from raywatch.config import EmailSinkConfig
from raywatch.sinks.base import PermanentError, TransientError
from raywatch.sinks.email import EmailSink
from sink_fixtures import tls_cert  # noqa: F401  (fixture)


@pytest.fixture
def smtp(tls_cert):
    s = SMTPServer(*tls_cert, username="raywatch", password="pw-Secret-123", refuse=("nobody@example.com",))
    try:
        yield s
    finally:
        s.close()


def sink_for(smtp, tls_cert, **kw):
    args = dict(name="mail", type="email", host="127.0.0.1", port=smtp.port, to=["ops@example.com"],
                username="raywatch", password="pw-Secret-123", ca_file=tls_cert[0], timeout=2)
    args["from"] = "raywatch@example.com"
    args.update(kw)
    return EmailSink(EmailSinkConfig(**args))


def test_starttls_auth_and_message(smtp, tls_cert):
    sink_for(smtp, tls_cert).send(notification(alert(severity="critical"), alert("Drift", fp="f2", status="resolved")))
    (m,) = smtp.messages
    assert m["tls"] is True and m["to"] == ["ops@example.com"]
    msg = m["message"]
    assert msg["Subject"] == "[raywatch] [FIRING:1] HighLatency"
    text = msg.get_body(("plain",)).get_content()
    assert "FIRING [critical] HighLatency on fraud" in text and "RESOLVED [warning] Drift on fraud" in text
    assert "<table" in msg.get_body(("html",)).get_content()


def test_untrusted_certificate_is_refused(smtp, tls_cert):
    sink = sink_for(smtp, tls_cert, ca_file=None)  # system trust store: the self-signed cert is unknown
    with pytest.raises(PermanentError, match="certificate"):
        sink.send(notification())
    assert smtp.messages == []


def test_wrong_password_is_permanent_and_never_shown(smtp, tls_cert, caplog):
    sink = sink_for(smtp, tls_cert, password="wrong-Secret-456")
    with caplog.at_level(logging.DEBUG):
        ok, err, attempts = deliver_with_retries(sink, notification(), FAST_RETRY)
    assert not ok and attempts == 1 and isinstance(err, PermanentError)
    assert "wrong-Secret-456" not in caplog.text and "wrong-Secret-456" not in str(err)


def test_temporary_failure_is_retried(smtp, tls_cert):
    smtp.data_replies.append("451 4.3.0 try again later")
    ok, err, attempts = deliver_with_retries(sink_for(smtp, tls_cert), notification(), FAST_RETRY)
    assert ok and attempts == 2 and len(smtp.messages) == 1


def test_refused_recipient_is_permanent(smtp, tls_cert):
    with pytest.raises(PermanentError, match="nobody@example.com"):
        sink_for(smtp, tls_cert, to=["nobody@example.com"]).send(notification())


def test_server_without_starttls_is_refused(tls_cert):
    s = SMTPServer(*tls_cert, offer_starttls=False)
    try:
        with pytest.raises(PermanentError, match="STARTTLS"):
            sink_for(s, tls_cert, username=None, password=None).send(notification())
    finally:
        s.close()


def test_connection_refused_is_transient(tls_cert):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    class Fake:
        pass

    f = Fake()
    f.port = port
    with pytest.raises(TransientError):
        sink_for(f, tls_cert).send(notification())


def test_implicit_tls_smtps(tls_cert):
    s = SMTPServer(*tls_cert, username="raywatch", password="pw-Secret-123", offer_starttls=False, implicit_tls=True)
    try:
        sink_for(s, tls_cert, implicit_tls=True).send(notification(alert(severity="critical")))
        (m,) = s.messages
        assert m["tls"] is True and m["message"]["Subject"] == "[raywatch] [FIRING:1] HighLatency"
        # the certificate is checked on this path too
        with pytest.raises(PermanentError, match="certificate"):
            sink_for(s, tls_cert, implicit_tls=True, ca_file=None).send(notification())
        # a STARTTLS client cannot talk to an SMTPS port: a connection error, retried
        with pytest.raises(TransientError):
            sink_for(s, tls_cert).send(notification())
        assert len(s.messages) == 1
    finally:
        s.close()


def test_implicit_tls_is_the_default_for_port_465():
    from raywatch.sinks.email import implicit_tls

    cfg = dict(name="mail", type="email", host="smtp.example.com", to=["ops@example.com"], **{"from": "rw@example.com"})
    assert implicit_tls(EmailSinkConfig(**cfg, port=465)) is True
    assert implicit_tls(EmailSinkConfig(**cfg)) is False  # 587, STARTTLS
    assert implicit_tls(EmailSinkConfig(**cfg, port=465, implicit_tls=False)) is False
    assert implicit_tls(EmailSinkConfig(**cfg, port=2465, implicit_tls=True)) is True


def test_a_trickling_smtp_server_cannot_hold_a_worker_past_the_timeout(tls_cert):
    """Every reply one byte per 0.2 s: each read returns in time, a whole exchange takes a minute."""
    import time

    slow = SMTPServer(*tls_cert, trickle=0.2)
    try:
        sink = sink_for(slow, tls_cert, timeout=1, username=None, password=None)
        t0 = time.monotonic()
        with pytest.raises(TransientError, match="timed out after 1s"):
            sink.send(notification())
        assert time.monotonic() - t0 < 3.5
    finally:
        slow.close()
