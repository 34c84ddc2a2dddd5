"""An Alertmanager configuration with raywatch's routing tree, inhibition and receivers, for
teams that let raywatch push to Alertmanager and route there.

Durations (``group_wait``, ``group_interval``, ``repeat_interval``) are written exactly in
Alertmanager's duration syntax (milliseconds at the finest; a finer one is refused with an
:class:`~raywatch.export.base.ExportError` naming the route and field). Secrets are never
written.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import yaml

from raywatch.alerts.routing import DEFAULT_GROUP_BY, DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL
from raywatch.config import AlertingConfig
from raywatch.expr import parse_matchers
from raywatch.export.base import ExportError, prom_duration

__all__ = ["alertmanager_config", "alertmanager_config_yaml"]

_TIMERS = ("group_wait", "group_interval", "repeat_interval")


def _am_route(route: Any, path: str, problems: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    recv = route.receivers()
    if recv:
        out["receiver"] = "+".join(recv)
    if route.matchers:
        out["matchers"] = [str(m) for m in parse_matchers(route.matchers)]
    if route.group_by is not None:
        out["group_by"] = list(route.group_by)
    for k in _TIMERS:
        v = getattr(route, k)
        if v is not None:
            try:
                out[k] = prom_duration(v, f"{path}.{k}")
            except ExportError as exc:
                problems.extend(exc.problems)
    if route.continue_:
        out["continue"] = True
    if route.routes:
        out["routes"] = [_am_route(c, f"{path}.routes[{i}]", problems) for i, c in enumerate(route.routes)]
    return out


def alertmanager_config(cfg: Any, *, secrets_dir: str = "/etc/alertmanager/secrets") -> Dict[str, Any]:
    """An Alertmanager configuration with the same routing tree, inhibition and receivers.

    Secrets are never written: Slack webhook URLs are read from ``api_url_file`` under
    ``secrets_dir``; PagerDuty keys, webhook URLs and SMTP passwords are left as
    ``<secret:NAME>`` placeholders to fill in.
    """
    cfg = AlertingConfig.of(cfg)
    routed = [s for s in cfg.sinks if s.type != "alertmanager"]
    receivers: Dict[str, Dict[str, Any]] = {}

    def receiver_for(names: Sequence[str]) -> str:
        name = "+".join(names) if names else "null"
        if name in receivers:
            return name
        r: Dict[str, Any] = {"name": name}
        for sname in names:
            s = next((x for x in routed if x.name == sname), None)
            if s is None:
                continue
            sr = {"send_resolved": bool(s.send_resolved)}
            if s.type == "slack":
                c = dict(sr, api_url_file=f"{secrets_dir}/{s.name}")
                if s.channel:
                    c["channel"] = s.channel
                r.setdefault("slack_configs", []).append(c)
            elif s.type == "pagerduty":
                r.setdefault("pagerduty_configs", []).append(dict(sr, routing_key=f"<secret:{s.name}.routing_key>", url=s.url))
            elif s.type == "webhook":
                r.setdefault("webhook_configs", []).append(dict(sr, url=f"http://127.0.0.1/<secret:{s.name}.url>",
                                                                max_alerts=s.max_alerts))
            elif s.type == "email":
                c = dict(sr, to=", ".join(s.to), smarthost=f"{s.host}:{s.port}", require_tls=bool(s.starttls))
                c["from"] = s.from_
                if s.username:
                    c["auth_username"] = s.username
                    c["auth_password"] = f"<secret:{s.name}.password>"
                r.setdefault("email_configs", []).append(c)
        receivers[name] = r
        return name

    problems: List[str] = []
    if cfg.route is not None:
        root = _am_route(cfg.route, "route", problems)
    else:
        root = {"receiver": "+".join(s.name for s in routed) or "null", "group_by": list(DEFAULT_GROUP_BY)}
    if problems:
        raise ExportError(problems)
    root.setdefault("group_by", list(DEFAULT_GROUP_BY))
    for k, default in zip(_TIMERS, (DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL)):
        root.setdefault(k, prom_duration(default))

    def collect(node: Dict[str, Any]) -> None:
        if "receiver" in node:
            node["receiver"] = receiver_for(node["receiver"].split("+") if node["receiver"] != "null" else [])
        for c in node.get("routes", []):
            collect(c)

    collect(root)
    return {
        "route": root,
        "receivers": list(receivers.values()),
        "inhibit_rules": [
            {"source_matchers": [str(m) for m in parse_matchers(i.source_matchers)],
             "target_matchers": [str(m) for m in parse_matchers(i.target_matchers)],
             **({"equal": list(i.equal)} if i.equal else {})}
            for i in cfg.inhibit_rules
        ],
    }


def alertmanager_config_yaml(cfg: Any, **kw: Any) -> str:
    head = "# Generated by raywatch from its route, inhibit_rules and sinks. Fill in <secret:...> values.\n"
    return head + yaml.safe_dump(alertmanager_config(cfg, **kw), sort_keys=False, allow_unicode=True)
