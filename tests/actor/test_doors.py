"""Locked doors on the stats actor: its listeners served for real on 127.0.0.1 (aiohttp),
around a real StatsCore with a real SQLite file, without a Ray cluster (issue 11).

* ``/metrics`` listens apart from ``/status`` and ``/feedback`` — test_metrics_listens_apart
* token auth (401 without or with a wrong token, constant-time comparison), a model-scoped
  token (403 for another model, and for /status) — test_tokens_*
* a body naming another model than the path's, and labels for unknown models —
  test_model_in_the_path_pins_the_labels
* per-client rate limit, 429 with Retry-After — test_rate_limit
* the body read in chunks against its limit: refused before the client has sent it all —
  test_body_is_refused_as_soon_as_it_passes_the_limit
* labels over the caps are refused and reported — test_labels_over_the_caps_are_refused
* a journal write that fails is 503, not acknowledged — test_failed_journal_write_is_503
* TLS with certificate and key files — test_tls
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sqlite3
import ssl
import time

import aiohttp
import pytest
from rw_batches import make_batch, profile  # noqa: F401 (fixture)

from raywatch.actor.actor import StatsActor
from raywatch.actor.server import TokenTable
from raywatch.config import MonitorConfig

T0 = time.time()
TOKEN = "s3cret-token-for-tests"


def make(tmp_path, profile, monkeypatch, **actor):
    monkeypatch.setenv("RW_TEST_TOKEN", TOKEN)
    a = {"sqlite_path": str(tmp_path / "s.sqlite"), "metrics_port": 0, "api_port": 0, "busy_timeout": 0.2}
    a.update(actor)
    cfg = MonitorConfig(model="m", windows={"evaluation_interval": 3600}, actor=a)
    act = StatsActor(cfg)
    for key in ("app/Model", "app/Other"):
        act.core.register_model(key, {"model": key.split("/")[1].lower()}, profile.to_bytes())
    preds = [(f"q{i}", i % 2, 0.5) for i in range(20)]
    act.core.ingest(make_batch(profile, n=20, seq=1, ts=T0, predictions=preds))
    return act


def run(act, scenario):
    """Start the actor's listeners on this loop, run ``scenario(act, http)``, stop them."""

    async def main():
        await act._ensure_started()
        try:
            async with aiohttp.ClientSession() as http:
                return await scenario(act, http)
        finally:
            await act.close(timeout=1)

    return asyncio.run(main())


async def call(http, method, url, token=None, **kw):
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, url, headers=headers, **kw) as r:
        text = await r.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return r.status, body, dict(r.headers)


def test_metrics_listens_apart(tmp_path, profile, monkeypatch):
    act = make(tmp_path, profile, monkeypatch)

    async def scenario(act, http):
        m, api = act.server.address, act.server.api_address
        return (await call(http, "GET", m + "/metrics"), await call(http, "GET", m + "/status"),
                await call(http, "POST", m + "/feedback", json={"request_id": "q1", "label": 1}),
                await call(http, "GET", api + "/metrics"), await call(http, "GET", api + "/status"))

    metrics, status_on_m, feedback_on_m, metrics_on_api, status = run(act, scenario)
    assert metrics[0] == 200 and "raywatch_store_journal_bytes" in metrics[1]
    assert status_on_m[0] == 404 and feedback_on_m[0] in (404, 405) and metrics_on_api[0] == 404
    assert status[0] == 200 and set(status[1]["models"]) == {"app/Model", "app/Other"}


def test_tokens_full_and_scoped(tmp_path, profile, monkeypatch):
    act = make(tmp_path, profile, monkeypatch, api_token="${RW_TEST_TOKEN}",
               feedback_tokens=[{"token": "scoped-token", "models": ["app/Model"]}])

    async def scenario(act, http):
        api = act.server.api_address
        out = {}
        out["none"] = await call(http, "GET", api + "/status")
        out["wrong"] = await call(http, "GET", api + "/status", token=TOKEN[:-1] + "X")
        out["right"] = await call(http, "GET", api + "/status", token=TOKEN)
        out["scoped_status"] = await call(http, "GET", api + "/status", token="scoped-token")
        out["scoped_own"] = await call(http, "POST", api + "/feedback", token="scoped-token",
                                       json={"request_id": "q1", "label": 1})
        out["scoped_other"] = await call(http, "POST", api + "/feedback", token="scoped-token",
                                         json={"request_id": "q2", "label": 0, "model": "app/Other"})
        out["scoped_mixed"] = await call(http, "POST", api + "/feedback", token="scoped-token",
                                         json=[{"request_id": "q3", "label": 1, "model": "app/Model"},
                                               {"request_id": "q4", "label": 0, "model": "app/Other"}])
        out["full_other"] = await call(http, "POST", api + "/feedback", token=TOKEN,
                                       json={"request_id": "q5", "label": 1, "model": "app/Other"})
        out["healthz"] = await call(http, "GET", api + "/healthz")
        return out

    out = run(act, scenario)
    assert out["none"][0] == 401 and out["none"][2]["WWW-Authenticate"].startswith("Bearer")
    assert out["wrong"][0] == 401 and out["right"][0] == 200
    assert out["scoped_status"][0] == 403
    assert out["scoped_own"][:2] == (200, {"accepted": 1, "joined": 1, "refused": {}})
    assert out["scoped_other"][0] == 403 and "app/Other" in out["scoped_other"][1]["error"]
    assert out["scoped_mixed"][0] == 403  # refused whole: nothing of it was taken
    assert out["full_other"][0] == 200 and out["healthz"][0] == 200
    assert act.core.status()["models"]["app/Model"]["totals"]["feedback_rows"] == 1


def test_tokens_compare_in_constant_time(monkeypatch):
    import hmac

    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: (seen.append((a, b)), real(a, b))[1])
    table = TokenTable("full", [("s1", ["a/b"]), ("s2", ["c/d"])])
    assert table.lookup("s1") == (True, frozenset({"a/b"}))
    assert table.lookup("nope") == (False, None) and table.lookup(None) == (False, None)
    assert len(seen) == 9  # every token compared on every lookup, no early exit


def test_model_in_the_path_pins_the_labels(tmp_path, profile, monkeypatch):
    act = make(tmp_path, profile, monkeypatch)

    async def scenario(act, http):
        api = act.server.api_address
        return (await call(http, "POST", api + "/feedback/app/Model", json=[{"request_id": "q1", "label": 1}]),
                await call(http, "POST", api + "/feedback/app/Model",
                           json=[{"request_id": "q2", "label": 1, "model": "app/Other"}]),
                await call(http, "POST", api + "/feedback/app/Nope", json={"request_id": "q3", "label": 1}),
                await call(http, "POST", api + "/feedback", json={"request_id": "q4", "label": 1, "model": "x/Y"}))

    own, other, unknown_path, unknown_body = run(act, scenario)
    assert own[:2] == (200, {"accepted": 1, "joined": 1, "refused": {}})
    assert other[0] == 403
    assert unknown_path[0] == 404 and unknown_body[0] == 404 and "x/Y" in unknown_body[1]["error"]


def test_rate_limit(tmp_path, profile, monkeypatch):
    act = make(tmp_path, profile, monkeypatch, api_rate_limit=0.5, api_rate_burst=3)

    async def scenario(act, http):
        api = act.server.api_address
        return [await call(http, "GET", api + "/status") for _ in range(5)]

    answers = run(act, scenario)
    assert [a[0] for a in answers] == [200, 200, 200, 429, 429]
    assert int(answers[3][2]["Retry-After"]) >= 1


def test_body_is_refused_as_soon_as_it_passes_the_limit(tmp_path, profile, monkeypatch):
    act = make(tmp_path, profile, monkeypatch, api_max_body_bytes=64 * 1024)

    async def scenario(act, http):
        api = act.server.api_address
        host, port = api.split("//")[1].split(":")
        declared = await call(http, "POST", api + "/feedback", data=b"x" * (70 * 1024))
        # a chunked body of no declared length: the answer comes before the client sent it all
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"[" + b" " * 16382 + b"\n"
        sent = 0
        for _ in range(5):  # 80 KiB: past the limit
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
        return declared, status, sent

    declared, status, sent = run(act, scenario)
    assert declared[0] == 413
    assert status.startswith(b"HTTP/1.1 413"), status  # no terminating chunk was ever sent


def test_labels_over_the_caps_are_refused(tmp_path, profile, monkeypatch):
    act = make(tmp_path, profile, monkeypatch)

    async def scenario(act, http):
        api = act.server.api_address
        return await call(http, "POST", api + "/feedback",
                          json=[{"request_id": "q1", "label": 1, "model": "app/Model"},
                                {"request_id": "big", "label": "x" * 5000},
                                {"request_id": "r" * 5000, "label": 1}])

    status, body, _ = run(act, scenario)
    assert status == 200 and body == {"accepted": 1, "joined": 1, "refused": {"too_large": 2}}


def test_failed_journal_write_is_503(tmp_path, profile, monkeypatch):
    act = make(tmp_path, profile, monkeypatch)

    async def scenario(act, http):
        api = act.server.api_address
        other = sqlite3.connect(str(tmp_path / "s.sqlite"), isolation_level=None, timeout=0.1)
        other.execute("BEGIN IMMEDIATE")
        try:
            failed = await call(http, "POST", api + "/feedback", json={"request_id": "q1", "label": 1})
        finally:
            other.execute("ROLLBACK")
            other.close()
        again = await call(http, "POST", api + "/feedback", json={"request_id": "q1", "label": 1})
        return failed, again

    failed, again = run(act, scenario)
    assert failed[0] == 503 and failed[2]["Retry-After"] == "1"
    assert again[:2] == (200, {"accepted": 1, "joined": 1, "refused": {}})


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_tls(tmp_path, profile, monkeypatch):
    cert, key = _self_signed(tmp_path)
    act = make(tmp_path, profile, monkeypatch, tls_cert_file=cert, tls_key_file=key, api_token="${RW_TEST_TOKEN}")

    async def scenario(act, http):
        api, m = act.server.api_address, act.server.address
        trust = ssl.create_default_context(cafile=cert)
        ok = await call(http, "GET", api + "/status", token=TOKEN, ssl=trust)
        scrape = await call(http, "GET", m + "/metrics", ssl=trust)
        try:  # plain HTTP to the TLS listener gets no answer: how the client fails varies with timing
            await asyncio.wait_for(call(http, "GET", api.replace("https://", "http://") + "/status", token=TOKEN), 30)
            plain = "answered"
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
            plain = "refused"
        return api, ok, scrape, plain

    api, ok, scrape, plain = run(act, scenario)
    assert api.startswith("https://127.0.0.1:") and ok[0] == 200 and scrape[0] == 200 and plain == "refused"


def test_no_token_beyond_loopback_is_refused(tmp_path):
    from raywatch.actor.server import StatsServer

    async def noop(*a):
        return {}

    with pytest.raises(ValueError, match="needs a token"):
        StatsServer(None, noop, noop, api_host="0.0.0.0", api_port=0)
