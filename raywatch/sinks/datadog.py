"""Datadog through the official ``datadog`` package.

Over DogStatsD (UDP, always), for each alert of a notification:

* gauges ``raywatch.alert.firing`` (1 firing, 0 resolved) and, while firing,
  ``raywatch.alert.value`` (the value that crossed the threshold), tagged with the alert's labels
  (catalogue entries :data:`~raywatch.series.ALERT_FIRING` and :data:`~raywatch.series.ALERT_VALUE`);
* an event (``_e``) titled like the notification, ``aggregation_key`` = the alert's
  fingerprint so Datadog folds an alert's transitions together, ``alert_type`` from the
  severity (``success`` when resolved);
* a service check (``_sc``) named ``service_check`` (default ``raywatch.alert``), tagged
  with the rule's ``alertname`` and scope: OK when resolved, WARNING for warning/info,
  CRITICAL for critical/error.

DogStatsD is UDP: nothing acknowledges a datagram, so with DogStatsD alone the sink is
*best effort* (:attr:`Sink.acknowledged` is False): the delivery layer counts its
notifications in ``notifications_best_effort_total``, never as sent.

With ``api_key`` (and ``app_key``) configured, each event is also posted to the HTTP API
(``POST {api_host}/api/v1/events``, through :func:`~raywatch.sinks.base.http_post_json`: an
overall deadline per attempt, redirects not followed), and that acceptance is what counts as
sent. :meth:`DatadogSink.sync_monitors` creates or updates monitor definitions
(``/api/v1/monitor``) it is given (:mod:`raywatch.export.datadog` writes them from the alert
rules); it refuses redirects too, so the keys never reach another host.
``api_host`` is configurable (EU site, or a local receiver in tests).

Tags are ``key:value`` with characters DogStatsD reserves (``|``, ``,``, ``#``, ``:`` in
keys, newlines) replaced by ``_``.

>>> tags_for({"alertname": "High|Latency", "model": "fraud", "feature": "a,b"})
['alertname:high_latency', 'feature:a_b', 'model:fraud']
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, Iterable, List, Mapping

from raywatch import series
from raywatch.sinks.base import PermanentError, RetryAfter, Sink, TransientError, http_post_json, parse_retry_after

log = logging.getLogger("raywatch.sinks.datadog")

__all__ = ["DatadogSink", "tags_for", "STATUS"]

STATUS = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
TITLE_MAX = 100   # Datadog's limit for an event title
TEXT_MAX = 4000   # and for its text
_ALERT_TYPE = {"critical": "error", "error": "error", "warning": "warning", "info": "info"}
_api_lock = threading.Lock()  # the datadog package keeps API settings in module globals
_last_response = threading.local()


def _clean(text: str) -> str:
    for ch in "|,#\n\r":
        text = text.replace(ch, "_")
    return text


def tags_for(labels: Mapping[str, str], extra: Iterable[str] = ()) -> List[str]:
    """Datadog tags from labels (lower case, reserved characters replaced), sorted."""
    tags = [f"{_clean(k).replace(':', '_').lower()}:{_clean(str(v)).lower()}" for k, v in labels.items() if v != ""]
    return sorted(tags) + [_clean(t) for t in extra]


def _check_status(alert: Mapping[str, Any]) -> int:
    if alert["status"] == "resolved":
        return STATUS["ok"]
    sev = alert["labels"].get("severity", "")
    return STATUS["critical"] if sev in ("critical", "error") else STATUS["warning"]


def _recording_client():
    """A datadog HTTP client that remembers the last response (status, Retry-After), so a
    429 can be told from other refusals (the package folds them into ApiError), and that
    follows no redirect (the package's session would send the keys to the new host)."""
    import requests
    from datadog.api.http_client import RequestClient

    class _Recording(RequestClient):
        _session = None

        @classmethod
        def request(cls, method, url, headers, params, data, timeout, proxies, verify, max_retries):
            _last_response.status = None
            _last_response.retry_after = None
            with cls._session_lock:
                if cls._session is None:
                    session = requests.Session()
                    session.max_redirects = 0  # a 3xx raises TooManyRedirects before anything is re-sent
                    session.mount("https://", requests.adapters.HTTPAdapter(max_retries=max_retries))
                    cls._session = session
            result = super().request(method, url, headers, params, data, timeout, proxies, verify, max_retries)
            _last_response.status = result.status_code
            _last_response.retry_after = result.headers.get("Retry-After")
            return result

    return _Recording


class DatadogSink(Sink):
    type = "datadog"

    @property
    def acknowledged(self) -> bool:
        """Only the HTTP API acknowledges; DogStatsD alone (UDP) is best effort."""
        return self.cfg.api_key is not None

    def __init__(self, cfg):
        super().__init__(cfg)
        from datadog.dogstatsd import DogStatsd

        self.statsd = DogStatsd(host=cfg.statsd_host, port=int(cfg.statsd_port), constant_tags=list(cfg.tags),
                                disable_telemetry=True)

    # ------------------------------------------------------------------ DogStatsD
    def send(self, notification) -> None:
        extra = list(self.cfg.tags)
        for a in notification.alerts:
            labels = a["labels"]
            tags = tags_for(labels)
            firing = a["status"] == "firing"
            sev = labels.get("severity", "")
            self.statsd.gauge(series.ALERT_FIRING.datadog, 1 if firing else 0, tags=tags)
            if firing and isinstance(a.get("value"), (int, float)):
                self.statsd.gauge(series.ALERT_VALUE.datadog, float(a["value"]), tags=tags)
            title = f"[{'FIRING' if firing else 'RESOLVED'}] {labels.get('alertname', '')}"
            scope = " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity"))
            if scope:
                title += f" ({scope})"
            ann = a.get("annotations") or {}
            text = "\n".join(x for x in (ann.get("summary"), ann.get("description"),
                                         f"value: {a.get('value')}" if a.get("value") is not None else None) if x)
            title = title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"
            text = (text or title)[:TEXT_MAX]
            alert_type = "success" if not firing else _ALERT_TYPE.get(sev, "warning")
            self.statsd.event(title, text or title, alert_type=alert_type, aggregation_key=a.get("fingerprint"),
                              source_type_name="raywatch", tags=tags)
            check_tags = tags_for({k: v for k, v in labels.items() if k in ("alertname", "app", "deployment", "model", "version")})
            self.statsd.service_check(self.cfg.service_check, _check_status(a), tags=check_tags,
                                      message=(ann.get("summary") or title)[:500])
            if self.cfg.api_key is not None:
                self._post_event({"title": title, "text": text or title, "alert_type": alert_type,
                                  "aggregation_key": a.get("fingerprint"), "source_type_name": "raywatch",
                                  "tags": tags + extra})
        self.statsd.flush()

    def _post_event(self, body: Dict[str, Any]) -> None:
        """``POST /api/v1/events``: Datadog answers 202; 429 carries Retry-After."""
        c = self.cfg
        headers = {"DD-API-KEY": c.api_key.get_secret_value()}
        if c.app_key is not None:
            headers["DD-APPLICATION-KEY"] = c.app_key.get_secret_value()
        http_post_json(c.api_host.rstrip("/") + "/api/v1/events", {k: v for k, v in body.items() if v is not None},
                       timeout=float(c.timeout), headers=headers)

    # ------------------------------------------------------------------ HTTP API
    def _api(self, resource: str, method: str, *args: Any, **kwargs: Any) -> Any:
        import requests
        from datadog import api
        from datadog.api import exceptions as dx
        from datadog.api.api_client import APIClient

        c = self.cfg
        with _api_lock:
            saved = (api._api_key, api._application_key, api._api_host, api._mute, api._timeout, api._max_retries)
            client = APIClient._http_client
            try:
                api._api_key = c.api_key.get_secret_value()
                api._application_key = c.app_key.get_secret_value() if c.app_key is not None else None
                api._api_host = c.api_host.rstrip("/")
                api._mute = False
                api._timeout = float(c.timeout)
                api._max_retries = 0
                APIClient._http_client = _recording_client()
                APIClient._timeout_counter = 0  # our own retry policy applies, not the package's back-off
                APIClient._backoff_timestamp = None
                return getattr(getattr(api, resource), method)(*args, **kwargs)
            except requests.exceptions.TooManyRedirects as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                raise PermanentError(f"the Datadog API answered with a redirect (HTTP {status}); redirects are not "
                                     "followed, so that the keys reach no other host: check api_host",
                                     status=status) from None
            except dx.HttpTimeout:
                raise TransientError(f"Datadog API timed out after {c.timeout:g}s") from None
            except (dx.ClientError, dx.ProxyError, dx.HttpBackoff) as exc:
                raise TransientError(f"Datadog API connection error: {type(exc).__name__}") from None
            except dx.HTTPError as exc:
                raise TransientError(f"Datadog API error: {self.redact(str(exc))[:200]}") from None
            except dx.ApiError as exc:
                status = getattr(_last_response, "status", None)
                answer = str(exc.args[0] if exc.args else exc)
                if status == 429:
                    ra = parse_retry_after(getattr(_last_response, "retry_after", None))
                    raise RetryAfter(f"Datadog API rate limited, retry after {ra:g}s", status=429,
                                     answer=answer, retry_after=ra) from None
                raise PermanentError(f"Datadog API refused the request (HTTP {status})", status=status,
                                     answer=self.redact(answer)) from None
            except ValueError as exc:  # invalid JSON answer
                raise TransientError(f"Datadog API answered with invalid JSON: {str(exc)[:100]}") from None
            finally:
                (api._api_key, api._application_key, api._api_host, api._mute, api._timeout, api._max_retries) = saved
                APIClient._http_client = client

    def sync_monitors(self, monitors: List[Dict[str, Any]]) -> Dict[str, int]:
        """Create or update monitors (matched by name) over the HTTP API.

        Needs ``api_key`` and ``app_key``. Returns ``{"created": n, "updated": m}``.
        """
        if self.cfg.api_key is None or self.cfg.app_key is None:
            raise PermanentError("syncing monitors needs api_key and app_key in the datadog sink's config")
        existing = self._api("Monitor", "get_all", monitor_tags="source:raywatch") or []
        by_name = {m.get("name"): m.get("id") for m in existing if isinstance(m, dict)}
        out = {"created": 0, "updated": 0}
        for m in monitors:
            mid = by_name.get(m["name"])
            body = {k: v for k, v in m.items() if k in ("type", "query", "name", "message", "tags", "options", "priority")}
            if mid is not None:
                self._api("Monitor", "update", mid, **body)
                out["updated"] += 1
            else:
                self._api("Monitor", "create", **body)
                out["created"] += 1
        return out

    def close(self) -> None:
        try:
            self.statsd.close_socket()
        except Exception:  # noqa: BLE001
            pass
