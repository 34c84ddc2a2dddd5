"""Slack incoming webhook: Block Kit message with a plain-text fallback.

The message has a header (``[FIRING:2] HighLatency (fraud)``), one section per alert
(at most :data:`MAX_ALERTS`, then a count), with severity shown by an emoji and in words,
and a context line; ``text`` carries the plain-text fallback Slack shows in notifications.
Resolved notifications say so in the header and use a check mark.

Slack answers ``200 ok``; ``400 invalid_payload``/``invalid_blocks``, ``403``, ``404``,
``410`` are not retried (the answer is logged); ``429`` is retried after ``Retry-After``.
The webhook URL is a secret. Slack takes about one message per second per webhook: the
sink's ``rate_limit`` defaults to 1.

>>> from raywatch.sinks.notification import Notification
>>> n = Notification.build("slack", "g", {"alertname": "HighLatency", "model": "fraud"}, [
...     {"status": "firing", "labels": {"alertname": "HighLatency", "model": "fraud", "severity": "critical"},
...      "annotations": {"summary": "p95 latency 0.8s"}, "startsAt": "2026-01-01T00:00:00.000Z", "fingerprint": "f1"}])
>>> body = message(n)
>>> body["text"].splitlines()[0], [b["type"] for b in body["blocks"]]
('[FIRING:1] HighLatency (fraud)', ['header', 'section', 'context'])
>>> body["blocks"][1]["text"]["text"].splitlines()[0]
':red_circle: *CRITICAL* p95 latency 0.8s'
"""

from __future__ import annotations

from typing import Any, Dict, List

from raywatch.sinks.base import Sink, http_post_json

__all__ = ["SlackSink", "message", "MAX_ALERTS"]

MAX_ALERTS = 20  # sections per message (Slack allows 50 blocks)
HEADER_MAX = 150
SECTION_MAX = 3000
TEXT_MAX = 4000

_EMOJI = {"critical": ":red_circle:", "error": ":large_orange_circle:", "warning": ":large_yellow_circle:",
          "info": ":large_blue_circle:"}


def _esc(text: str) -> str:
    """Slack's mrkdwn escaping of &, < and >."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message(n: Any, *, channel: str | None = None, username: str | None = None,
            icon_emoji: str | None = None) -> Dict[str, Any]:
    """The JSON body for one notification."""
    resolved = n.status == "resolved"
    blocks: List[Dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(n.title(), HEADER_MAX), "emoji": True}}
    ]
    for a in n.alerts[:MAX_ALERTS]:
        labels = a["labels"]
        ann = a.get("annotations") or {}
        sev = labels.get("severity", "")
        done = a["status"] == "resolved"
        icon = ":white_check_mark:" if done else _EMOJI.get(sev, ":grey_question:")
        head = ann.get("summary") or labels.get("alertname", "")
        lines = [f"{icon} *{'RESOLVED' if done else sev.upper() or 'ALERT'}* {_esc(head)}"]
        if ann.get("description"):
            lines.append(_esc(ann["description"]))
        scope = ", ".join(f"{k}=`{_esc(v)}`" for k, v in sorted(labels.items()) if k not in ("alertname", "severity"))
        if scope:
            lines.append(scope)
        if ann.get("runbook_url"):
            lines.append(f"<{ann['runbook_url']}|Runbook>")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), SECTION_MAX)}})
    more = len(n.alerts) - MAX_ALERTS + n.truncated_alerts
    if more > 0:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"… and {more} more alerts"}})
    counts = f"{len(n.firing)} firing, {len(n.resolved)} resolved"
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"raywatch · {'resolved' if resolved else 'severity ' + (n.severity or 'n/a')} · {counts}"}]})
    body: Dict[str, Any] = {"text": _cut(n.text(), TEXT_MAX), "blocks": blocks}
    if channel:
        body["channel"] = channel
    if username:
        body["username"] = username
    if icon_emoji:
        body["icon_emoji"] = icon_emoji
    return body


class SlackSink(Sink):
    type = "slack"

    def send(self, notification) -> None:
        c = self.cfg
        http_post_json(c.webhook_url.get_secret_value(),
                       message(notification, channel=c.channel, username=c.username, icon_emoji=c.icon_emoji),
                       timeout=float(c.timeout))
