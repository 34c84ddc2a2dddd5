"""The demo's alert receiver: a local endpoint that speaks Alertmanager's v2 API
(``POST /api/v2/alerts``, what raywatch's ``alertmanager`` sink sends) and its webhook
format (``POST /alerts``, version 4, what the ``webhook`` sink sends). It prints each alert
as it changes state and appends it to a JSONL file."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click

from raywatch import series
from raywatch.config import WATCHDOG_ALERTNAME

__all__ = ["AlertReceiver", "free_port", "port_free"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class AlertReceiver:
    """A local webhook endpoint (Alertmanager's webhook format, version 4): prints each alert
    and appends it to a JSONL file."""

    def __init__(self, path: Path, echo: Any):
        self.path = path
        self.echo = echo
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}/alerts"
        self.count = 0
        self.events: List[Dict[str, Any]] = []
        self._state: Dict[Tuple[Tuple[str, str], ...], str] = {}
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Any = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raywatch-demo-alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the demo's alert receiver did not start")

    def _run(self) -> None:
        from aiohttp import web

        async def webhook(request: "web.Request") -> "web.Response":
            # Alertmanager's webhook payload (version 4): what raywatch's webhook sink sends
            try:
                body = await request.json()
            except Exception:
                return web.Response(status=400, text="expected JSON")
            alerts = body.get("alerts") if isinstance(body, dict) else None
            if not isinstance(alerts, list):
                return web.Response(status=400, text="expected Alertmanager's webhook payload")
            self._record(alerts, str(body.get("receiver") or "webhook"), lambda a: str(a.get("status") or "firing"))
            return web.Response(status=200, text="ok")

        async def am_api(request: "web.Request") -> "web.Response":
            # Alertmanager's v2 API (POST /api/v2/alerts): what raywatch's alertmanager sink sends;
            # an alert whose endsAt has passed is resolved, as Alertmanager reads it
            try:
                alerts = await request.json()
            except Exception:
                return web.Response(status=400, text="expected JSON")
            if not isinstance(alerts, list) or not all(isinstance(a, dict) and isinstance(a.get("labels"), dict) for a in alerts):
                return web.Response(status=400, text="expected a list of postable alerts")
            now = time.time()
            self._record(alerts, "alertmanager-api", lambda a: "resolved" if _ts(a.get("endsAt")) <= now else "firing")
            return web.Response(status=200)

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/alerts", webhook)
            app.router.add_post("/api/v2/alerts", am_api)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            self._started.set()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        self._loop.run_forever()

    def _record(self, alerts: List[Dict[str, Any]], receiver: str, status_of: Any) -> None:
        """Write and print each alert whose state changed (Alertmanager re-sends firing
        alerts; the console and the file get each transition once)."""
        received = time.time()
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            for a in alerts:
                labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
                status = status_of(a)
                key = tuple(sorted(labels.items()))
                if self._state.get(key) == status:
                    continue
                self._state[key] = status
                rec = {
                    "received_at": received,
                    "status": status,
                    "labels": labels,
                    "annotations": a.get("annotations") or {},
                    "startsAt": a.get("startsAt"),
                    "endsAt": a.get("endsAt"),
                    "receiver": receiver,
                }
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                self.count += 1
                self.events.append(rec)
                self.echo(_alert_line(rec))

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            fut.result(5)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _ts(value: Any) -> float:
    """UTC epoch seconds of an RFC 3339 time (Alertmanager's zero time is long past)."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return float("inf")


def _alert_line(rec: Dict[str, Any]) -> str:
    labels = rec.get("labels") or {}
    if labels.get("alertname") == WATCHDOG_ALERTNAME:
        return (click.style("  HEARTBEAT     ", fg="blue", bold=True)
                + f" {WATCHDOG_ALERTNAME} — raywatch's alerting pipeline is alive (a receiver that stops hearing it"
                " knows raywatch went silent)")
    status = str(rec.get("status", "")).upper()
    colour = "red" if status == "FIRING" else "green"
    feature = f" feature={labels['feature']}" if labels.get("feature") else ""
    if labels.get(series.SEGMENT):  # a per-segment alert names its segment first
        feature = f" {labels.get(series.SEGMENT_COLUMN)}={labels[series.SEGMENT]}" + feature
    summary = (rec.get("annotations") or {}).get("summary") or ""
    return (
        click.style(f"  ALERT {status:<8}", fg=colour, bold=True)
        + f" {labels.get('alertname', '?')} [{labels.get('severity', '')}]{feature} — {summary}"
    )
