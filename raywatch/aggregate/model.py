"""What the stats actor holds for one model, and how it is stored as data.

:class:`ModelState` is one model (``"app/deployment"``): its labels, configuration and
reference profile, its open and closed windows, what it remembers of each replica
(:class:`ReplicaMemory`: the batch sequence numbers already merged, cumulative counters,
the latest resources), totals, streaming detectors and the last evaluation.

Its state is a ``raywatch.model-state`` record, version 1 (JSON; the configuration and the
profile are stored apart, in the ``models`` table)::

    {"format": "raywatch.model-state", "version": 1,
     "labels": {...}, "open": [<window>...], "closed": [<window>...],
     "closed_until": <end of the newest closed window, -Infinity when none>,
     "first_seen": <ts or null>, "replicas": [<replica>...], "retired": {...},
     "totals": {...}, "error_types": {...},
     "detectors": {"latency": <raywatch.detector record, or null: restart it>, ...},
     "detector_hits": {...}, "detector_counts": {...}, "detector_restarts": {...},
     "refused": {"summaries": n, "values": n, "labels": n},
     "label_values": [<distinct label values of the confusion matrix>...],
     "generation": <the deployment generation the figures belong to, or null>,
     "past_generations": [<superseded generations>...], "generations": <generations started>}

(``refused``, ``label_values``, the ``generation`` fields and ``calibrations`` — the streaming detectors'
calibrations from an expected run time, :mod:`raywatch.aggregate.calibrated` — are optional: a record
without them is read as empty.)

A window is :meth:`~raywatch.aggregate.windows.Window.state` (its merged summary as base64
of the summary codec's bytes); a replica is ``{"replica_id", "node_id", "max_seq", "seqs":
[[first, last], ...], "last_seen", "requests", "dropped_total", "capture_errors_total", "resources"}``
(``requests``: the requests of the batches merged from that replica; optional, read as 0).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from raywatch.aggregate.calibrated import DetectorCalibrations
from raywatch.aggregate.data import fields, from_ranges, record, seq_ranges
from raywatch.aggregate.detectors import NAMES, Detector
from raywatch.aggregate.windows import Window
from raywatch.config import MonitorConfig, StreamDetectorConfig
from raywatch.series import CAPTURE_ERRORS_TOTAL, FEEDBACK_ROWS, Series
from raywatch.stats.profile import Profile

__all__ = ["ModelState", "ReplicaMemory", "SEQ_MEMORY"]

log = logging.getLogger("raywatch.aggregate.model")

FORMAT, VERSION = "raywatch.model-state", 1
SEQ_MEMORY = 4096
"""Per replica: how far back an out-of-order duplicate batch is recognised."""


class ReplicaMemory:
    """What the actor remembers about one replica: sequence numbers, counters, resources."""

    def __init__(self, replica_id: str):
        self.replica_id = replica_id
        self.node_id: Optional[str] = None
        self.max_seq = -1
        self.seqs: set = set()
        self.last_seen = 0.0
        self.requests = 0  # requests of the batches merged from this replica
        self.dropped_total = 0  # the replica's own cumulative counter (requests it never sent)
        self.abandoned = 0  # requests of batches it sent, gave up on, and this actor never stored
        self.capture_errors_total = 0
        self.resources: Dict[str, Any] = {}

    @property
    def dropped(self) -> int:
        """Requests of this replica that were dropped: never sent, or abandoned and never stored."""
        return self.dropped_total + self.abandoned

    def abandon(self, entries: Any) -> int:
        """Take the replica's abandoned batches (``[[seq, requests], …]``, checked at admission:
        ``raywatch.stats.batch.check_abandoned``): a seq never stored counts its requests as
        dropped and is marked, so that the batch, should it still come, is a duplicate. Returns
        the requests counted now (0 for those already stored, or already counted)."""
        counted = 0
        for seq, n in entries:
            if not self.seen(seq):
                self.mark(seq)
                counted += n
        self.abandoned += counted
        return counted

    def seen(self, seq: int) -> bool:
        if seq in self.seqs:
            return True
        return seq <= self.max_seq - SEQ_MEMORY

    def unmark(self, seq: int) -> None:
        """Forget ``seq`` (a batch whose journal write failed: it was never merged)."""
        self.seqs.discard(seq)
        if seq == self.max_seq:
            self.max_seq = max(self.seqs) if self.seqs else -1

    def mark(self, seq: int) -> None:
        self.seqs.add(seq)
        if seq > self.max_seq:
            self.max_seq = seq
        if len(self.seqs) > 2 * SEQ_MEMORY:
            floor = self.max_seq - SEQ_MEMORY
            self.seqs = {s for s in self.seqs if s > floor}

    def absorb(self, other: "ReplicaMemory") -> None:
        """Take in what another memory of the same replica holds (the batches a new shard took
        before a hand-over arrived: :mod:`raywatch.aggregate.rebalance`): its seqs, its merged
        and abandoned requests; its cumulative counters and resources where they are newer."""
        for seq in other.seqs:  # (its max_seq is among them)
            self.mark(seq)
        self.requests += other.requests
        self.abandoned += other.abandoned
        self.dropped_total = max(self.dropped_total, other.dropped_total)
        self.capture_errors_total = max(self.capture_errors_total, other.capture_errors_total)
        if other.last_seen > self.last_seen:
            self.last_seen, self.node_id = other.last_seen, other.node_id or self.node_id
            self.resources = other.resources or self.resources

    def state(self) -> Dict[str, Any]:
        return {"replica_id": self.replica_id, "node_id": self.node_id, "max_seq": self.max_seq,
                "seqs": seq_ranges(self.seqs), "last_seen": self.last_seen, "requests": self.requests,
                "dropped_total": self.dropped_total, "abandoned": self.abandoned,
                CAPTURE_ERRORS_TOTAL.name: self.capture_errors_total, "resources": self.resources}

    @classmethod
    def from_state(cls, s: Dict[str, Any]) -> "ReplicaMemory":
        r = cls(str(s["replica_id"]))
        r.node_id = s.get("node_id")
        r.max_seq = int(s.get("max_seq", -1))
        r.seqs = from_ranges(s.get("seqs") or [])
        r.last_seen = float(s.get("last_seen", 0.0))
        r.requests = int(s.get("requests", 0))
        r.dropped_total = int(s.get("dropped_total", 0))
        r.abandoned = int(s.get("abandoned", 0))
        r.capture_errors_total = int(s.get(CAPTURE_ERRORS_TOTAL.name, 0))
        r.resources = dict(s.get("resources") or {})
        return r


class ModelState:
    """Everything the actor holds for one model (``"app/deployment"``).

    ``config_secrets`` says whether the configuration's secrets are usable: ``"ok"``,
    ``"masked"`` (restored from a file that stored them masked: the replicas are asked to
    register their configuration again) or ``"unset"`` (a ``${ENV}`` reference whose
    variable is not set in the actor's process).
    """

    def __init__(self, key: str, labels: Dict[str, str], config: MonitorConfig, profile: Optional[Profile] = None,
                 profile_bytes: Optional[bytes] = None):
        self.key = key
        self.labels = labels
        self.config = config
        self.config_secrets = "ok"
        self.profile = profile
        self.profile_bytes = profile_bytes
        self.open: Dict[float, Window] = {}
        self.closed: Deque[Window] = deque()
        self.closed_until = -math.inf  # end of the newest closed window
        self.closed_view: Optional[Tuple[Tuple[Window, ...], Window]] = None  # (closed windows in the view, their merge)
        # in [0, 1), fixed per key (in every process): when, within windows.close_spread, its windows close
        self.close_phase = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") / 2.0**64
        self.first_seen: Optional[float] = None
        self.replicas: Dict[str, ReplicaMemory] = {}
        self.retired = {"dropped": 0, "capture_errors": 0}
        self.totals = {
            "requests": 0,
            "errors": 0,
            "rows": 0,
            "batches": 0,
            "duplicates": 0,
            "late_batches": 0,
            "future_batches": 0,
            "predictions": 0,
            FEEDBACK_ROWS.name: 0,  # labels joined, cumulative
        }
        # what this model's data cost itself: summaries / sketches failing their semantic checks,
        # values of a batch that were not plain data, joins over the distinct-label-values cap
        self.refused = {"summaries": 0, "values": 0, "labels": 0, "stale_batches": 0}
        self.profile_refused: Optional[str] = None  # why the last profile offered was refused
        self.registered = True  # False: created by a batch; its replicas are asked for their config
        self.label_values: set = set()  # distinct label keys in the confusion matrix (classification)
        self.generation: Optional[str] = None  # see raywatch.aggregate.generations
        self.past_generations: List[str] = []
        self.generations = 0  # generations started since the model was first seen
        self.error_types: Dict[str, int] = {}
        self.detectors: Dict[str, Detector] = {}
        self.detector_hits: Dict[str, float] = {}  # detector -> UTC time it last fired
        self.detector_counts: Dict[str, int] = {}
        self.detector_restarts: Dict[str, int] = {}  # detectors whose stored state could not be used
        self.calibrations = DetectorCalibrations(config.shipping.flush_interval)  # (issue 13) expected_run_time
        self.view: Dict[str, Any] = {}  # last evaluation (status, /metrics, rules)
        self.series: List[Series] = []

    # ------------------------------------------------------------------ counters
    @property
    def dropped_total(self) -> int:
        return self.retired["dropped"] + sum(r.dropped for r in self.replicas.values())

    @property
    def capture_errors_total(self) -> int:
        return self.retired["capture_errors"] + sum(r.capture_errors_total for r in self.replicas.values())

    # ------------------------------------------------------------------ detectors
    def detector_config(self, which: str) -> StreamDetectorConfig:
        return getattr(self.config.detectors, which)  # which: a field of DetectorsConfig (NAMES)

    def detector(self, which: str) -> Optional[Detector]:
        """The detector ``which`` (one of :data:`~raywatch.aggregate.detectors.NAMES`),
        built on first use; None when it is disabled."""
        det = self.detectors.get(which)
        dcfg = self.detector_config(which)
        if dcfg.enabled and dcfg.expected_run_time is not None:  # (issue 13) calibrated parameters, once made
            params = self.calibrations.params(which, dcfg)
            if params is None:
                self.detectors.pop(which, None)
                return None
            if det is None or (det.method, det.params) != (dcfg.method, params):
                det = self.detectors[which] = Detector(dcfg.method, params)
            return det
        if det is None:
            if not dcfg.enabled:
                return None
            det = self.detectors[which] = Detector(dcfg.method, dcfg.params)
        return det

    def detect(self, which: str, x: float, ts: float) -> None:
        """Feed ``x`` to the detector ``which``; a detection is recorded at ``ts``."""
        if not math.isfinite(x):
            return
        det = self.detector(which)
        if det is None:
            dcfg = self.detector_config(which)
            if dcfg.enabled and dcfg.expected_run_time is not None:
                self.calibrations.offer(which, dcfg, float(x), float(ts))  # (issue 13) still calibrating
            return
        if det.update(float(x)):
            self.detector_hits[which] = float(ts)
            self.detector_counts[which] = self.detector_counts.get(which, 0) + 1

    # ------------------------------------------------------------------ persistence
    def state(self) -> Dict[str, Any]:
        """The model's state as a ``raywatch.model-state`` record (see the module docstring)."""
        return record(
            FORMAT, VERSION,
            labels=dict(self.labels),
            open=[w.state() for w in self.open.values()],
            closed=[w.state() for w in self.closed],
            closed_until=self.closed_until,
            first_seen=self.first_seen,
            replicas=[r.state() for r in self.replicas.values()],
            retired=dict(self.retired),
            totals=dict(self.totals),
            error_types=dict(self.error_types),
            detectors={name: det.state() for name, det in self.detectors.items()},
            detector_hits=dict(self.detector_hits),
            detector_counts=dict(self.detector_counts),
            detector_restarts=dict(self.detector_restarts),
            refused=dict(self.refused),
            label_values=sorted(self.label_values, key=lambda v: (type(v).__name__, v)),
            generation=self.generation,
            past_generations=list(self.past_generations),
            generations=self.generations,
            calibrations=self.calibrations.state(),
        )

    def restore(self, s: Dict[str, Any]) -> None:
        """Resume from :meth:`state` (ValueError when it is another format or version)."""
        s = fields(s, FORMAT, VERSION)
        self.labels.update({k: v for k, v in (s.get("labels") or {}).items() if v})
        self.open = {w.start: w for w in (Window.from_state(d) for d in s.get("open", []))}
        self.closed = deque(Window.from_state(d) for d in s.get("closed", []))
        self.closed_until = float(s.get("closed_until", -math.inf))
        self.first_seen = s.get("first_seen")
        self.replicas = {r.replica_id: r for r in (ReplicaMemory.from_state(d) for d in s.get("replicas", []))}
        self.retired.update(s.get("retired") or {})
        self.totals.update(s.get("totals") or {})
        self.error_types = dict(s.get("error_types") or {})
        self.detector_hits = dict(s.get("detector_hits") or {})
        self.detector_counts = dict(s.get("detector_counts") or {})
        self.detector_restarts = dict(s.get("detector_restarts") or {})
        self.refused.update(s.get("refused") or {})
        self.label_values = set(s.get("label_values") or ())
        self.generation = s.get("generation")
        self.past_generations = [str(g) for g in s.get("past_generations") or []]
        self.generations = int(s.get("generations") or 0)
        self.calibrations.restore(s.get("calibrations"))
        self.detectors = {}
        for name, det in (s.get("detectors") or {}).items():
            if name not in NAMES:
                continue
            try:
                if det is None:
                    raise ValueError("no stored state (written by an older raywatch)")
                self.detectors[name] = Detector.from_state(det)
            except Exception as exc:  # restart fresh, counted
                log.warning("model %s: detector %s not restored (starts fresh): %s", self.key, name, exc)
                self.detector_restarts[name] = self.detector_restarts.get(name, 0) + 1
                self.detector(name)
