"""Local stand-ins for the services raywatch's sinks talk to, all bound to 127.0.0.1.

* :class:`HTTPReceiver`: an HTTP server that checks each JSON body against the documented
  format of the service it stands in for (Slack incoming webhooks, PagerDuty Events v2,
  Alertmanager's webhook payload, Datadog's events API) and answers as the service does:
  200/202, 400 with the service's error text, 429 with ``Retry-After``, 500, or no answer
  within the client's timeout, as scripted per path. Faults, also scripted per path: a
  redirect (``Answer(302, headers={"Location": ...})``), an answer trickled one byte at a
  time (``trickle``), raw bytes instead of an HTTP answer (``raw``: a malformed status line,
  a body cut short) or the connection closed without a word (``hang_up``).
* :class:`DogStatsDReceiver`: a UDP socket; datagrams parsed by DogStatsD's documented
  grammar (metrics, ``_e`` events, ``_sc`` service checks, ``#tags``).
* :class:`SMTPServer`: a minimal ESMTP server with STARTTLS (self-signed certificate made
  with ``openssl``), AUTH PLAIN, scripted temporary failures and refused recipients.
"""

from __future__ import annotations

import base64
import collections
import json
import re
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

# --------------------------------------------------------------------------- formats

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def check_slack(body: Any) -> List[str]:
    """Slack incoming webhook body: ``text`` and/or Block Kit ``blocks`` within Slack's limits."""
    p: List[str] = []
    if not isinstance(body, dict):
        return ["body is not an object"]
    blocks = body.get("blocks")
    if not body.get("text") and not blocks:
        p.append("missing text and blocks")
    if "text" in body and not isinstance(body["text"], str):
        p.append("text is not a string")
    if blocks is not None:
        if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
            return p + ["blocks must be a list of 1..50 blocks"]
        for i, b in enumerate(blocks):
            t = b.get("type")
            if t == "header":
                tx = b.get("text") or {}
                if tx.get("type") != "plain_text" or not 1 <= len(tx.get("text", "")) <= 150:
                    p.append(f"blocks[{i}]: header needs plain_text of 1..150 characters")
            elif t == "section":
                tx = b.get("text")
                fields = b.get("fields")
                if tx is None and not fields:
                    p.append(f"blocks[{i}]: section needs text or fields")
                if tx is not None and (tx.get("type") not in ("mrkdwn", "plain_text") or not 1 <= len(tx.get("text", "")) <= 3000):
                    p.append(f"blocks[{i}]: section text must be mrkdwn/plain_text of 1..3000 characters")
                if fields is not None and (len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields)):
                    p.append(f"blocks[{i}]: at most 10 fields of 2000 characters")
            elif t == "context":
                els = b.get("elements") or []
                if not 1 <= len(els) <= 10 or any(e.get("type") not in ("mrkdwn", "plain_text", "image") for e in els):
                    p.append(f"blocks[{i}]: context needs 1..10 text or image elements")
            elif t != "divider":
                p.append(f"blocks[{i}]: unexpected block type {t!r}")
            if "block_id" in b and len(b["block_id"]) > 255:
                p.append(f"blocks[{i}]: block_id too long")
    return p


def check_pagerduty(body: Any) -> List[str]:
    """PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/)."""
    if not isinstance(body, dict):
        return ["body is not an object"]
    p = []
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        p.append("routing_key must be a 32-character string")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        p.append("event_action must be trigger, acknowledge or resolve")
    dk = body.get("dedup_key")
    if action in ("acknowledge", "resolve") and not dk:
        p.append("dedup_key is required to acknowledge or resolve")
    if dk is not None and (not isinstance(dk, str) or len(dk) > 255):
        p.append("dedup_key must be a string of at most 255 characters")
    if action == "trigger":
        pl = body.get("payload")
        if not isinstance(pl, dict):
            return p + ["payload is required for trigger"]
        if not pl.get("summary") or len(pl["summary"]) > 1024:
            p.append("payload.summary must be 1..1024 characters")
        if not pl.get("source"):
            p.append("payload.source is required")
        if pl.get("severity") not in ("critical", "error", "warning", "info"):
            p.append("payload.severity must be critical, error, warning or info")
        if "timestamp" in pl and not ISO_RE.match(pl["timestamp"]):
            p.append("payload.timestamp must be ISO 8601")
        if "custom_details" in pl and not isinstance(pl["custom_details"], dict):
            p.append("payload.custom_details must be an object")
    return p


def check_am_webhook(body: Any) -> List[str]:
    """Alertmanager's webhook payload, version 4."""
    if not isinstance(body, dict):
        return ["body is not an object"]
    p = []
    for k, t in (("version", str), ("groupKey", str), ("status", str), ("receiver", str), ("groupLabels", dict),
                 ("commonLabels", dict), ("commonAnnotations", dict), ("externalURL", str), ("alerts", list),
                 ("truncatedAlerts", int)):
        if not isinstance(body.get(k), t):
            p.append(f"{k} missing or not {t.__name__}")
    if body.get("version") != "4":
        p.append("version must be '4'")
    if body.get("status") not in ("firing", "resolved"):
        p.append("status must be firing or resolved")
    for i, a in enumerate(body.get("alerts") or []):
        if a.get("status") not in ("firing", "resolved"):
            p.append(f"alerts[{i}].status")
        if not isinstance(a.get("labels"), dict) or not a["labels"].get("alertname"):
            p.append(f"alerts[{i}].labels needs alertname")
        if not ISO_RE.match(a.get("startsAt") or "") or not ISO_RE.match(a.get("endsAt") or ""):
            p.append(f"alerts[{i}] startsAt/endsAt must be RFC 3339")
        if not a.get("fingerprint"):
            p.append(f"alerts[{i}].fingerprint missing")
    return p


def check_datadog_event(body: Any) -> List[str]:
    """Datadog POST /api/v1/events body."""
    if not isinstance(body, dict):
        return ["body is not an object"]
    p = []
    if not body.get("title") or len(body["title"]) > 100:
        p.append("title must be 1..100 characters")
    if not body.get("text") or len(body["text"]) > 4000:
        p.append("text must be 1..4000 characters")
    if body.get("alert_type") not in (None, "error", "warning", "info", "success", "user_update",
                                      "recommendation", "snapshot"):
        p.append("alert_type not one of the documented values")
    if "aggregation_key" in body and len(body["aggregation_key"]) > 100:
        p.append("aggregation_key longer than 100 characters")
    return p


# --------------------------------------------------------------------------- HTTP


class Headers(dict):
    """Request headers, looked up case-insensitively as HTTP defines them."""

    def __init__(self, items):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(str(key).lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


@dataclass
class Request:
    method: str
    path: str
    headers: Dict[str, str]
    body: Any
    raw: bytes
    t: float
    status: int = 0
    raw_path: str = ""  # the request target as sent, query included


@dataclass
class Answer:
    status: int = 200
    body: Any = "ok"
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0            # seconds between bytes of the whole answer (status line included)
    raw: Optional[bytes] = None     # written as is instead of an HTTP answer, then the connection closes
    hang_up: bool = False           # close the connection without answering
    max_seconds: float = 30.0       # a trickled answer stops after this long (the server stops by itself)


class HTTPReceiver:
    """Records requests; answers from a per-path script, then with ``default``.

    ``validators`` maps a path prefix to a checker; a body that fails it gets the service's
    400 and the problems are kept in ``invalid``.
    """

    def __init__(self, validators: Optional[Dict[str, Callable[[Any], List[str]]]] = None,
                 bad_request: Optional[Dict[str, Answer]] = None):
        self.validators = validators or {}
        self.bad_request = bad_request or {}
        self.requests: List[Request] = []
        self.invalid: List[Tuple[str, List[str]]] = []
        self.scripts: Dict[str, Deque[Answer]] = collections.defaultdict(collections.deque)
        self.defaults: Dict[str, Answer] = {}
        self.routes: Dict[Tuple[str, str], Callable[[Request], Answer]] = {}
        self.cond = threading.Condition()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                path = self.path.split("?")[0]
                req = Request(self.command, path, Headers(self.headers.items()), body, raw, time.time(),
                              raw_path=self.path)
                ans = recv._answer(req)
                req.status = ans.status
                with recv.cond:
                    recv.requests.append(req)
                    recv.cond.notify_all()
                if ans.delay:
                    time.sleep(ans.delay)
                data = ans.body if isinstance(ans.body, bytes) else (
                    ans.body.encode() if isinstance(ans.body, str) else json.dumps(ans.body).encode())
                if ans.hang_up or ans.raw is not None:
                    try:
                        if ans.raw:
                            self.wfile.write(ans.raw)
                            self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                if ans.trickle:
                    head = [f"HTTP/1.1 {ans.status} X"] + [f"{k}: {v}" for k, v in ans.headers.items()]
                    whole = ("\r\n".join(head + [f"Content-Length: {len(data)}", "", ""])).encode() + data
                    stop = time.monotonic() + ans.max_seconds
                    try:
                        for i in range(len(whole)):
                            if time.monotonic() > stop:
                                break
                            self.wfile.write(whole[i:i + 1])
                            self.wfile.flush()
                            time.sleep(ans.trickle)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return
                try:
                    self.send_response(ans.status)
                    for k, v in ans.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_PUT = do_GET = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *answers: Answer) -> None:
        self.scripts[path].extend(answers)

    def _answer(self, req: Request) -> Answer:
        route = self.routes.get((req.method, req.path))
        for prefix, check in self.validators.items():
            if req.path.startswith(prefix) and req.method in ("POST", "PUT"):
                problems = check(req.body)
                if problems:
                    self.invalid.append((req.path, problems))
                    bad = self.bad_request.get(prefix, Answer(400, {"errors": problems}))
                    return Answer(bad.status, bad.body if bad.body is not None else {"errors": problems}, bad.headers)
        q = self.scripts.get(req.path)
        if q:
            return q.popleft()
        if route is not None:
            return route(req)
        return self.defaults.get(req.path, Answer())

    def wait_for(self, n: int, path: Optional[str] = None, timeout: float = 10.0, status: Optional[int] = None) -> List[Request]:
        """Wait until ``n`` matching requests arrived; returns them (raises on timeout)."""
        deadline = time.monotonic() + timeout

        def hits() -> List[Request]:
            return [r for r in self.requests if (path is None or r.path == path) and (status is None or r.status == status)]

        with self.cond:
            while len(hits()) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} requests to {path or 'any path'}, got {len(hits())}: "
                                         f"{[(r.path, r.status) for r in self.requests]}")
                self.cond.wait(left)
            return hits()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# --------------------------------------------------------------------------- DogStatsD


def parse_dogstatsd(line: str) -> Dict[str, Any]:
    """One DogStatsD datagram line, by the documented grammar:

    * ``<METRIC>:<VALUE>|<TYPE>[|@<RATE>][|#<TAGS>]``
    * ``_e{<TITLE_LEN>,<TEXT_LEN>}:<TITLE>|<TEXT>[|d:<TS>][|h:<HOST>][|k:<AGG_KEY>][|p:<PRIORITY>][|s:<SOURCE>][|t:<ALERT_TYPE>][|#<TAGS>]``
    * ``_sc|<NAME>|<STATUS>[|d:<TS>][|h:<HOST>][|#<TAGS>][|m:<MESSAGE>]``
    """

    def tags(s: str) -> List[str]:
        return [t for t in s.split(",") if t]

    if line.startswith("_e{"):
        m = re.match(r"^_e\{(\d+),(\d+)\}:", line)
        if not m:
            raise ValueError(f"bad event header: {line!r}")
        tl, xl = int(m.group(1)), int(m.group(2))
        rest = line[m.end():].encode()
        title = rest[:tl].decode()
        if rest[tl:tl + 1] != b"|":
            raise ValueError(f"title length does not match: {line!r}")
        text = rest[tl + 1: tl + 1 + xl].decode()
        tail = rest[tl + 1 + xl:].decode()
        out: Dict[str, Any] = {"kind": "event", "title": title, "text": text.replace("\\n", "\n"), "tags": []}
        if tail and not tail.startswith("|"):
            raise ValueError(f"text length does not match: {line!r}")
        for part in [p for p in tail.split("|") if p]:
            key, _, val = part.partition(":")
            if part.startswith("#"):
                out["tags"] = tags(part[1:])
            elif key in ("d", "h", "k", "p", "s", "t"):
                out[{"d": "timestamp", "h": "hostname", "k": "aggregation_key", "p": "priority",
                     "s": "source_type_name", "t": "alert_type"}[key]] = val
            else:
                raise ValueError(f"unknown event field {part!r}")
        return out
    if line.startswith("_sc|"):
        parts = line.split("|")
        if len(parts) < 3 or parts[2] not in ("0", "1", "2", "3"):
            raise ValueError(f"bad service check: {line!r}")
        out = {"kind": "service_check", "name": parts[1], "status": int(parts[2]), "tags": []}
        for part in parts[3:]:
            if part.startswith("#"):
                out["tags"] = tags(part[1:])
            elif part.startswith("m:"):
                out["message"] = part[2:]
            elif part[:2] in ("d:", "h:"):
                out["timestamp" if part[0] == "d" else "hostname"] = part[2:]
            else:
                raise ValueError(f"unknown service check field {part!r}")
        return out
    m = re.match(r"^([^:|@#]+):([^|]+)\|(c|g|ms|h|s|d)((?:\|[^|]+)*)$", line)
    if not m:
        raise ValueError(f"bad metric datagram: {line!r}")
    out = {"kind": "metric", "name": m.group(1), "value": float(m.group(2)), "type": m.group(3), "tags": []}
    for part in [p for p in m.group(4).split("|") if p]:
        if part.startswith("#"):
            out["tags"] = tags(part[1:])
        elif part.startswith("@"):
            out["sample_rate"] = float(part[1:])
        elif part.startswith("c:") or part.startswith("T"):
            pass
        else:
            raise ValueError(f"unknown metric field {part!r}")
    return out


class DogStatsDReceiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.items: List[Dict[str, Any]] = []
        self.errors: List[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            for line in data.decode().split("\n"):
                if not line:
                    continue
                try:
                    self.items.append(parse_dogstatsd(line))
                except ValueError as exc:
                    self.errors.append(str(exc))

    def wait_for(self, pred: Callable[[List[Dict[str, Any]]], bool], timeout: float = 5.0) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.items):
                return self.items
            time.sleep(0.01)
        raise AssertionError(f"DogStatsD datagrams did not arrive: {self.items}, errors {self.errors}")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


# --------------------------------------------------------------------------- SMTP


def make_cert(directory) -> Tuple[str, str]:
    """A self-signed certificate for 127.0.0.1/localhost, made with the openssl binary (or
    the ``cryptography`` package where there is no openssl)."""
    import shutil

    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    if shutil.which("openssl") is None:
        return _make_cert_cryptography(cert, key)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return cert, key


def _make_cert_cryptography(cert: str, key: str) -> Tuple[str, str]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .sign(k, hashes.SHA256()))
    with open(cert, "wb") as fh:
        fh.write(c.public_bytes(serialization.Encoding.PEM))
    with open(key, "wb") as fh:
        fh.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption()))
    return cert, key


class SMTPServer:
    """ESMTP with STARTTLS and AUTH PLAIN; mail is refused before STARTTLS. With
    ``implicit_tls`` the connection is TLS from the first byte (SMTPS) instead; with
    ``trickle`` every reply is written one byte every ``trickle`` seconds."""

    def __init__(self, cert: str, key: str, *, username: str = "", password: str = "",
                 refuse: Tuple[str, ...] = (), offer_starttls: bool = True, implicit_tls: bool = False,
                 trickle: float = 0.0):
        self.messages: List[Dict[str, Any]] = []
        self.data_replies: Deque[str] = collections.deque()  # scripted replies to DATA, e.g. "451 try later"
        self.username, self.password, self.refuse = username, password, refuse
        self.errors: List[Any] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 5

            def setup(self) -> None:
                if implicit_tls:
                    self.request = ctx.wrap_socket(self.request, server_side=True)
                super().setup()
                self.tls = implicit_tls
                self.authed = not srv.username

            def send(self, line: str) -> None:
                data = (line + "\r\n").encode()
                if not trickle:
                    self.wfile.write(data)
                    self.wfile.flush()
                    return
                for i in range(len(data)):  # one byte at a time: each read returns, the reply never ends
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(trickle)

            def handle(self) -> None:
                self.send("220 localhost ESMTP raywatch-test")
                sender, rcpts = None, []
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    line = raw.decode().rstrip("\r\n")
                    cmd = line.split(" ", 1)[0].upper()
                    arg = line[len(cmd):].strip()
                    if cmd in ("EHLO", "HELO"):
                        ext = ["SIZE 1000000"]
                        if offer_starttls and not self.tls:
                            ext.append("STARTTLS")
                        if self.tls and srv.username:
                            ext.append("AUTH PLAIN")
                        lines = ["localhost"] + ext
                        for i, e in enumerate(lines):
                            self.send(("250 " if i == len(lines) - 1 else "250-") + e)
                    elif cmd == "STARTTLS":
                        self.send("220 2.0.0 Ready to start TLS")
                        self.connection = ctx.wrap_socket(self.connection, server_side=True)
                        self.rfile = self.connection.makefile("rb")
                        self.wfile = self.connection.makefile("wb")
                        self.tls, sender, rcpts = True, None, []
                    elif cmd == "AUTH":
                        mech, _, b64 = arg.partition(" ")
                        try:
                            _, user, pw = base64.b64decode(b64).decode().split("\0")
                        except ValueError:
                            self.send("501 5.5.2 bad AUTH")
                            continue
                        if mech.upper() == "PLAIN" and user == srv.username and pw == srv.password:
                            self.authed = True
                            self.send("235 2.7.0 Authentication successful")
                        else:
                            self.send("535 5.7.8 Authentication credentials invalid")
                    elif cmd == "MAIL":
                        if offer_starttls and not self.tls:
                            self.send("530 5.7.0 Must issue a STARTTLS command first")
                        elif not self.authed:
                            self.send("530 5.7.0 Authentication required")
                        else:
                            sender, rcpts = arg, []
                            self.send("250 2.1.0 OK")
                    elif cmd == "RCPT":
                        addr = re.search(r"<([^>]*)>", arg)
                        if addr and addr.group(1) in srv.refuse:
                            self.send("550 5.1.1 No such user")
                        else:
                            rcpts.append(addr.group(1) if addr else arg)
                            self.send("250 2.1.5 OK")
                    elif cmd == "DATA":
                        if not rcpts:
                            self.send("503 5.5.1 No recipients")
                            continue
                        self.send("354 End data with <CR><LF>.<CR><LF>")
                        chunks = []
                        while True:
                            l = self.rfile.readline()
                            if l in (b".\r\n", b""):
                                break
                            chunks.append(l[1:] if l.startswith(b"..") else l)
                        reply = srv.data_replies.popleft() if srv.data_replies else "250 2.0.0 queued"
                        if reply.startswith("250"):
                            srv.messages.append({"from": sender, "to": list(rcpts), "tls": self.tls,
                                                 "message": message_from_bytes(b"".join(chunks), policy=policy.default)})
                        self.send(reply)
                    elif cmd in ("RSET", "NOOP"):
                        self.send("250 2.0.0 OK")
                    elif cmd == "QUIT":
                        self.send("221 2.0.0 Bye")
                        return
                    else:
                        self.send("502 5.5.2 Command not recognized")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):  # e.g. a client refusing our certificate
                srv.errors.append(client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
