"""Log sink: each notification becomes one record of the ``raywatch.sinks.log`` logger.

>>> import logging
>>> from raywatch.config import LogSinkConfig
>>> from raywatch.sinks.notification import Notification
>>> sink = LogSink(LogSinkConfig(name="log", type="log", level="INFO"))
>>> n = Notification.build("log", "g", {}, [{"status": "resolved", "labels": {"alertname": "A"},
...                                          "annotations": {}, "fingerprint": "f"}])
>>> sink.send(n)
"""

from __future__ import annotations

import logging

from raywatch.sinks.base import Sink

log = logging.getLogger("raywatch.sinks.log")

__all__ = ["LogSink"]


class LogSink(Sink):
    type = "log"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.level = logging.getLevelName(cfg.level)

    def send(self, notification) -> None:
        level = self.level if notification.status == "firing" else min(self.level, logging.INFO)
        log.log(level, "%s", notification.text(),
                extra={"raywatch_notification": notification.to_dict(), "raywatch_sink": self.name})
