"""Open a page in headless Chromium through the DevTools protocol: collect console
messages, uncaught exceptions and log entries (failed loads included), count elements and
take a full-page PNG screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List

import aiohttp

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


@dataclass
class PageResult:
    png: bytes
    problems: List[str] = field(default_factory=list)  # console errors/warnings, exceptions, error logs
    counts: Dict[str, Any] = field(default_factory=dict)
    values: Dict[str, Any] = field(default_factory=dict)  # results of the JavaScript expressions asked for


def _stop(proc: subprocess.Popen) -> None:
    """Stop Chromium and every helper process of its session (renderer, GPU, crashpad)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(10)
            break
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def _profile_dir() -> Iterator[str]:
    """A fresh profile folder, removed afterwards. A helper process that outlived the browser
    for a moment may still be writing to it (CI once saw 'Directory not empty: Default'):
    the removal is tried again until the folder is gone, for at most 10 s."""
    path = tempfile.mkdtemp(prefix="rw-chromium-")
    try:
        yield path
    finally:
        deadline = time.monotonic() + 10
        while os.path.exists(path):
            try:
                shutil.rmtree(path)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


async def _open(chromium: str, url: str, width: int, height: int, selectors: Dict[str, str],
                expressions: Dict[str, str]) -> PageResult:
    with _profile_dir() as profile:
        proc = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes too: stopped together below
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text().strip()):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                await asyncio.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            async with aiohttp.ClientSession() as http:
                for _ in range(100):
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                        pages = [t for t in await r.json() if t.get("type") == "page"]
                    if pages:
                        break
                    await asyncio.sleep(0.1)
                ws_url = pages[0]["webSocketDebuggerUrl"]
                async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                    ids = iter(range(1, 10**6))
                    events: List[Dict[str, Any]] = []

                    async def call(method: str, **params: Any) -> Dict[str, Any]:
                        i = next(ids)
                        await ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
                        while True:
                            msg = json.loads((await ws.receive(timeout=60)).data)
                            if msg.get("id") == i:
                                if "error" in msg:
                                    raise RuntimeError(f"{method}: {msg['error']}")
                                return msg["result"]
                            events.append(msg)

                    await call("Runtime.enable")
                    await call("Log.enable")
                    await call("Page.enable")
                    await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
                    await call("Page.navigate", url=url)
                    deadline = time.monotonic() + 30
                    while not any(e.get("method") == "Page.loadEventFired" for e in events):
                        if time.monotonic() > deadline:
                            raise RuntimeError("page did not load")
                        try:
                            events.append(json.loads((await ws.receive(timeout=1)).data))
                        except asyncio.TimeoutError:
                            pass
                    await asyncio.sleep(0.5)
                    counts = {}
                    for name, sel in selectors.items():
                        res = await call("Runtime.evaluate", expression=f"document.querySelectorAll({json.dumps(sel)}).length", returnByValue=True)
                        counts[name] = res["result"]["value"]
                    values = {}
                    for name, expr in expressions.items():
                        res = await call("Runtime.evaluate", expression=expr, returnByValue=True)
                        values[name] = res["result"].get("value")
                    shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        finally:
            _stop(proc)
    problems = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            problems.append(f"console.{p['type']}: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            problems.append("exception: " + str(p.get("exceptionDetails", {}).get("exception", {}).get("description") or p.get("exceptionDetails", {}).get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
            problems.append(f"log {p['entry']['level']}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return PageResult(png=base64.b64decode(shot["data"]), problems=problems, counts=counts, values=values)


def open_page(chromium: str, path: os.PathLike, width: int = 1100, height: int = 3000, selectors: Dict[str, str] | None = None,
              expressions: Dict[str, str] | None = None) -> PageResult:
    """Open ``path``; ``selectors`` are counted, ``expressions`` (JavaScript returning JSON-able
    values) evaluated once the page has loaded."""
    url = Path(path).resolve().as_uri()
    return asyncio.run(_open(chromium, url, width, height, selectors or {}, expressions or {}))
