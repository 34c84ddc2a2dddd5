"""The demo's traffic: transactions sent over HTTP at a steady rate, ground truth sent back."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["Traffic", "DRIFT", "MODEL_KEY", "SEGMENT_COLUMN", "SEGMENT", "FRAUD_WAVE"]

DRIFT = {"amount": 3.0, "distance_km": 5.0}
SEGMENT_COLUMN, SEGMENT = "merchant_category", "grocery"
"""The segment the drift hits: only its transactions drift, and a fraud wave starts in it."""
FRAUD_WAVE = 0.25
"""The share of the segment's transactions that become frauds looking like genuine spending."""
MIN_DURATION = 30.0
"""The shortest demo that shows its story: the drift is injected at 30 % of the duration and
the latency regression at 50 %, with 10 s windows and a 2-window rolling view."""
"""The data drift the demo injects: each feature's factor."""
APP = "fraud"
DEPLOYMENT = "FraudModel"
MODEL_KEY = f"{APP}/{DEPLOYMENT}"


class Traffic:
    """Steady-rate HTTP client in its own thread: one transaction per request; the ground
    truth of each answered request is sent back as feedback a little later."""

    def __init__(self, url: str, rps: float, seed: int, feedback_url: Optional[str], *, model_key: str = MODEL_KEY,
                 rows: Optional[Callable[[bool, int, int], Tuple[List[Dict[str, Any]], List[Any]]]] = None,
                 label: Callable[[Any], Any] = bool):
        self.url = url
        self.model_key = model_key
        self._make_rows = rows  # (drifted, chunk, k) -> (rows, labels); default: the fraud model's transactions
        self._label = label
        self.rps = rps
        self.seed = seed
        self.feedback_url = feedback_url
        self.drift = False
        self.sent = 0
        self.ok = 0
        self.failed = 0
        self.latencies: List[Tuple[float, float]] = []  # (monotonic time, seconds)
        self.feedback_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="raywatch-demo-traffic", daemon=True)
        self._pending_feedback: List[Dict[str, Any]] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _rows(self, drift: bool, chunk: int, k: int) -> Tuple[List[Dict[str, Any]], List[int]]:
        if self._make_rows is not None:
            return self._make_rows(drift, chunk, self.seed * 1000 + k)
        from deployments.fraud_data import generate_transactions, to_rows

        cols, y = generate_transactions(chunk, seed=self.seed * 1000 + k, drift=DRIFT if drift else None,
                                        segment=SEGMENT if drift else None, fraud_wave=FRAUD_WAVE if drift else 0.0)
        return to_rows(cols), y.tolist()

    async def _main(self) -> None:
        import aiohttp

        interval = 1.0 / max(self.rps, 0.1)
        sem = asyncio.Semaphore(32)
        chunk, k = 500, 0
        rows, labels, drifted = self._rows(False, chunk, k) + (False,)
        i = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            fb_task = asyncio.create_task(self._feedback_loop(session))
            next_t = time.monotonic()
            tasks = set()
            while not self._stop.is_set():
                if i >= len(rows) or drifted != self.drift:
                    k += 1
                    drifted = self.drift
                    rows, labels = self._rows(drifted, chunk, k)
                    i = 0
                row, label = rows[i], labels[i]
                i += 1
                await sem.acquire()
                t = asyncio.create_task(self._one(session, row, label, sem))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                next_t += interval
                delay = next_t - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -1.0:  # fell behind (machine busy): do not burst to catch up
                    next_t = time.monotonic()
            if tasks:
                await asyncio.wait(tasks, timeout=10)
            fb_task.cancel()
            await self._flush_feedback(session)

    async def _one(self, session: Any, row: Dict[str, Any], label: int, sem: asyncio.Semaphore) -> None:
        t0 = time.monotonic()
        self.sent += 1
        try:
            async with session.post(self.url, json=row) as resp:
                await resp.read()
                if resp.status == 200:
                    self.ok += 1
                    rid = resp.headers.get("x-request-id")
                    if rid and self.feedback_url:
                        self._pending_feedback.append({"request_id": rid, "label": self._label(label),
                                                       "model": self.model_key})
                else:
                    self.failed += 1
        except Exception:
            self.failed += 1
        finally:
            self.latencies.append((t0, time.monotonic() - t0))
            sem.release()

    async def _feedback_loop(self, session: Any) -> None:
        while True:
            await asyncio.sleep(2.0)
            await self._flush_feedback(session)

    async def _flush_feedback(self, session: Any) -> None:
        if not self.feedback_url or not self._pending_feedback:
            return
        items, self._pending_feedback = self._pending_feedback, []
        try:
            async with session.post(self.feedback_url, json={"items": items}) as resp:
                await resp.read()
                if resp.status < 300:
                    self.feedback_sent += len(items)
        except Exception:
            pass

    def client_p95(self, since: float, until: float) -> Optional[float]:
        xs = sorted(d for t, d in self.latencies if since <= t < until)
        if not xs:
            return None
        return xs[min(len(xs) - 1, int(0.95 * len(xs)))]
