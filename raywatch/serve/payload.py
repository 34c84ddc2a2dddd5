"""The payload log of a monitored replica (issue 14): sampled requests kept as Parquet for
retraining, written by the flusher thread — never on the request path.

:class:`ReplicaPayloadLog` is what :class:`~raywatch.serve.replica.ReplicaMonitor` keeps when
its settings have ``payload_log:``. At each flush it turns the drained capture records into
rows (:func:`raywatch.payload.rows.payload_rows`: the features after the capture's allow-list
and redaction, the prediction and score, the request id, model, version, replica, UTC time)
and queues them in a :class:`~raywatch.payload.log.PayloadLog`, which writes a file when one
is due. Only requests whose payload the capture kept are logged: ``capture.sample_rate``
decides that, and ``payload_log.sample_rate`` thins them further by a hash of the request id.
Its counters travel with every batch (``ReplicaBatch.payload_log``) to the stats actor.

A model with ``remediation:`` is logged by the rollout router in front of it instead
(:mod:`raywatch.serve.router`, which knows which version answered each request and keeps
a shadow's answers apart), so its replicas log nothing themselves.

A payload log that cannot start (pyarrow missing: ``pip install 'raywatch[log]'``, or a path
refused) is reported once and counted in the replica's capture errors; the model serves on.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from raywatch.payload.rows import payload_rows
from raywatch.serve.extract import prediction_and_score

__all__ = ["ReplicaPayloadLog", "wanted"]

logger = logging.getLogger("raywatch.serve.payload")


def wanted(config: Any) -> bool:
    """Whether a replica with ``config`` (a :class:`~raywatch.config.MonitorConfig`) logs
    payloads itself: ``payload_log`` on, and no ``remediation`` (whose router logs them)."""
    pl = getattr(config, "payload_log", None)
    rem = getattr(config, "remediation", None)
    return pl is not None and pl.enabled and (rem is None or not rem.enabled)


class ReplicaPayloadLog:
    """See the module docstring. ``log``: an already open payload log (tests)."""

    def __init__(self, cfg: Any, log: Any = None):
        if log is None:
            from raywatch.payload.log import PayloadLog  # pyarrow, only when a payload log is configured

            log = PayloadLog(cfg)
        self.cfg = cfg
        self.log = log

    @classmethod
    def make(cls, config: Any, on_error: Any) -> Optional["ReplicaPayloadLog"]:
        """The payload log ``config`` asks for (None when none, or when it cannot start:
        ``on_error(exc)`` is told, once)."""
        if not wanted(config):
            return None
        try:
            return cls(config.payload_log)
        except Exception as exc:
            logger.error("raywatch payload log disabled: %s", exc)
            on_error(exc)
            return None

    def add(self, records: Any, builder: Any) -> int:
        """Queue the rows of drained ``records`` (the builder's extractor, labels and clock);
        returns the rows kept."""
        if not records:
            return 0
        rows = payload_rows(records, builder.labels, builder.extractor, prediction_and_score,
                            epoch_offset=builder._epoch_offset, errors=builder._failed)
        return self.log.add(rows) if rows else 0

    def maybe_flush(self) -> int:
        """Write a file when one is due (a failed write keeps its rows, counted by the log)."""
        return self.log.maybe_flush()

    def flush(self) -> int:
        return self.log.flush()

    @property
    def counters(self) -> Dict[str, int]:
        return dict(self.log.counters)

    def stats(self) -> Dict[str, Any]:
        return {"path": self.cfg.path, **self.log.stats()}
