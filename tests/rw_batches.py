"""Helpers for the stats actor's tests in tests/aggregate and tests/actor (imported as
``rw_batches``: ``tests/`` is on ``sys.path`` through ``tests/conftest.py``): real profiles,
replica batches built from them, and a local webhook receiver."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from raywatch.stats.batch import ReplicaBatch
from raywatch.stats.profile import Profile
from raywatch.stats.sketch import LatencySketch


def reference(n: int = 4000, seed: int = 0) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "amount": rng.lognormal(3.0, 0.5, n),
        "age": rng.normal(40.0, 10.0, n),
        "country": rng.choice(["de", "fr", "us"], n, p=[0.5, 0.3, 0.2]),
    }


def rows(n: int, seed: int, drift: bool = False) -> Dict[str, Any]:
    rng = np.random.default_rng(seed)
    if drift:
        return {
            "amount": rng.lognormal(4.0, 0.5, n),
            "age": rng.normal(60.0, 10.0, n),
            "country": rng.choice(["de", "fr", "us"], n, p=[0.1, 0.1, 0.8]),
        }
    return {
        "amount": rng.lognormal(3.0, 0.5, n),
        "age": rng.normal(40.0, 10.0, n),
        "country": rng.choice(["de", "fr", "us"], n, p=[0.5, 0.3, 0.2]),
    }


def make_batch(
    profile: Optional[Profile],
    *,
    n: int = 200,
    seq: int = 1,
    replica: str = "r1",
    app: str = "app",
    deployment: str = "Model",
    ts: float = 1_000_000.0,
    span: float = 1.0,
    errors: int = 0,
    latencies: Optional[np.ndarray] = None,
    drift: bool = False,
    dropped_total: int = 0,
    capture_errors_total: int = 0,
    predictions: Optional[List[tuple]] = None,
    resources: Optional[Dict[str, Any]] = None,
    node_id: str = "node-a",
    seed: Optional[int] = None,
) -> ReplicaBatch:
    """A replica batch of ``n`` requests summarized with a real profile."""
    seed = seq if seed is None else seed
    sk = LatencySketch()
    lat = latencies if latencies is not None else np.random.default_rng(seed).uniform(0.010, 0.030, n)
    sk.add_many(lat)
    summary = profile.summarize(rows(n, seed, drift), seed=seed).to_bytes() if profile is not None else None
    return ReplicaBatch(
        app=app,
        deployment=deployment,
        model="m",
        version="v1",
        replica_id=replica,
        node_id=node_id,
        start_ts=ts - span,
        end_ts=ts,
        requests=n,
        errors={"ValueError": errors} if errors else {},
        statuses={},
        latency=sk.to_dict(),
        summary=summary,
        predictions=list(predictions or []),
        resources=resources if resources is not None else {"cpu_percent": 12.5, "rss_bytes": 100_000_000, "gpus": [], "gpu_status": "no GPU"},
        dropped_total=dropped_total,
        capture_errors_total=capture_errors_total,
        seq=seq,
    )


class WebhookReceiver:
    """A local webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it
    (Alertmanager's webhook payload, version 4, from raywatch's webhook sink)."""

    def __init__(self, path: str = "/alerts"):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def firing(self, alertname: str) -> List[Dict[str, Any]]:
        return [a for body in list(self.received) for a in body.get("alerts", [])
                if a["labels"].get("alertname") == alertname and a["status"] == "firing"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def unique_name(prefix: str = "rw-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def profile() -> Profile:
    """A reference profile of ``reference()`` (import this fixture into a test module)."""
    return Profile.fit(reference(), seed=0)
