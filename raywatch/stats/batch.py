"""What a replica ships to the stats actor, once per flush.

A :class:`ReplicaBatch` is the whole payload of one fire-and-forget actor call: counters,
a :class:`~raywatch.stats.sketch.LatencySketch` as a dict, the window summary of the
features and predictions seen (``WindowSummary.to_bytes()``), optionally the predictions
keyed by request id (for joining ground truth), the replica's resource figures and its
cumulative drop / capture-error counters. ``seq`` increases by one per batch and replica,
so the actor can ignore a batch it has already ingested (a retried call).

>>> from raywatch.stats.sketch import LatencySketch
>>> sk = LatencySketch(); sk.add_many([0.01, 0.02, 0.03])
>>> b = ReplicaBatch(app="app", deployment="Model", replica_id="r1", start_ts=0.0, end_ts=1.0,
...                  requests=3, errors={"ValueError": 1}, latency=sk.to_dict(), seq=1)
>>> b.model_key, b.error_count, round(b.latency_sketch().quantile(0.5), 3)
('app/Model', 1, 0.02)
>>> ReplicaBatch.from_dict(b.to_dict()) == b
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from raywatch.stats.sketch import LatencySketch

__all__ = ["ReplicaBatch", "NO_GPU", "model_key", "REREGISTER", "STORED", "DUPLICATE", "MAX_ABANDONED", "check_abandoned",
           "forwarded", "answer_of"]

NO_GPU = "no GPU"
"""``resources["gpu_status"]`` when the replica has no GPU assigned or no NVML driver."""


REREGISTER = "reregister"
"""The stats actor's answer to ``ingest`` (the batch was merged) when the model's stored
configuration lacks its secrets (a restart restored it with literal secrets masked): the
replica is asked to call ``register_model`` again with its configuration object."""


STORED = "ok"
"""The stats actor's answer to ``ingest`` when it merged the batch (as :data:`REREGISTER` does)."""

DUPLICATE = "duplicate"
"""The stats actor's answer to ``ingest`` for a seq it already has (merged, or told abandoned)."""

MAX_ABANDONED = 1024
"""Abandoned batches (``ReplicaBatch.abandoned``) a replica reports at most, and the actor accepts."""


def forwarded(reply: Any, shards: int) -> Dict[str, Any]:
    """The answer of a stats actor shard that passed a call on to the model's new owner (a
    shard added at run time took the model, :func:`raywatch.actor.add_shard`): the owner's
    own answer, and the shard count that places the model there, for the replica to resolve
    its shard again (:func:`answer_of` reads both). Passed on twice, the larger count wins.

    >>> forwarded("ok", 2)
    {'reply': 'ok', 'shards': 2}
    >>> answer_of(forwarded(forwarded("duplicate", 3), 2)), answer_of("ok")
    (('duplicate', 3), ('ok', None))
    """
    inner, n = answer_of(reply)
    return {"reply": inner, "shards": max(int(shards), n or 0)}


def answer_of(answer: Any) -> Tuple[Any, Optional[int]]:
    """``(the owner's answer, shard count or None)`` of an ``ingest`` answer (see :func:`forwarded`)."""
    if isinstance(answer, dict) and set(answer) == {"reply", "shards"}:
        return answer["reply"], int(answer["shards"])
    return answer, None


def check_abandoned(entries: Any) -> None:
    """Raise ValueError unless ``entries`` is a ``ReplicaBatch.abandoned`` the actor accepts: at
    most :data:`MAX_ABANDONED` ``[seq, requests]`` pairs of non-negative ints."""
    if not isinstance(entries, (list, tuple)) or len(entries) > MAX_ABANDONED:
        raise ValueError(f"abandoned must be a list of at most {MAX_ABANDONED} [seq, requests] pairs")
    for e in entries:
        if not (isinstance(e, (list, tuple)) and len(e) == 2 and all(type(x) is int and 0 <= x < 2**53 for x in e)):
            raise ValueError(f"abandoned entries are [seq, requests] pairs of non-negative ints, got {e!r}")


def model_key(app: str, deployment: str) -> str:
    """The actor's key for a model: ``"app/deployment"``.

    >>> model_key("default", "Classifier")
    'default/Classifier'
    """
    return f"{app}/{deployment}"


@dataclass
class ReplicaBatch:
    """One flush of one replica. Field meanings follow CONTRACTS section C.

    ``start_ts``/``end_ts`` are UTC epoch seconds bounding the records in the batch.
    ``errors`` maps an exception type name (or ``"http_5xx"``) to a count; ``statuses``
    maps an HTTP status code (as a string) to a count, for ingress deployments.
    ``dropped_total`` and ``capture_errors_total`` are cumulative since the replica
    started, so a lost batch does not lose the count: the actor takes differences.
    ``routes`` (route template or Serve route prefix -> requests, at most 100 distinct
    routes, the rest under ``"other"``) and ``methods`` (deployment method -> requests) are
    additions to the contract for per-route / per-method views; older readers may ignore them.

    Data quality the summary cannot say (each optional, with a default, so that older batches
    read back; an older reader may ignore them):

    ``wrong_types``
        profile column -> the type names of the values of this batch that the column counted
        as wrong type, in order of first appearance, at most 3 (``{"amount": ["str"]}``;
        an integer no float holds is ``"int (too large for float)"``). Only columns with
        wrong-type values in this batch.
    ``redacted``
        profile column -> the ``capture.redact`` pattern that removes it before it is
        summarized (``{"card_present": "card_*"}``): the column reads as missing because of
        that rule. Only ``redact_mode: drop``; computed once per configuration and profile,
        sent with every batch while the replica has a profile.
    ``payloads_dropped_total``
        cumulative since the replica started, like ``dropped_total``: sampled requests whose
        payload (features and prediction) was not summarized, by reason — ``"byte_budget"``
        (over ``shipping.max_buffer_bytes``) or ``"too_many_keys"`` (a row over
        ``capture.max_keys_per_row``). The requests themselves are counted in ``requests``.
    ``profile_error``
        why the replica has no reference profile of its own (``profile_path`` could not be
        read, with ``profile_required: false``), else None.
    ``generation``
        the deployment generation the replica belongs to (see the attribute's docstring).

    Who is affected (issue 12; each optional, None or empty when the replica has nothing to say;
    made by :mod:`raywatch.serve.segments`, merged by :mod:`raywatch.aggregate.segment_window`):

    ``segments``
        ``Segments.to_dict()`` (:mod:`raywatch.stats.segments`) of the flush's window summaries
        per segment column: the top ``segments.top_k`` values by rows plus ``__other__``.
        ``summary`` is then the summary of all the rows (the ``whole`` of the same pass).
    ``segment_traffic``
        the same for :class:`~raywatch.stats.segment_traffic.SegmentTraffic` (requests, errors,
        latency) per segment column, over the requests whose value is known.
    ``fairness``
        ``Segments.to_dict()`` of :class:`~raywatch.drift.fairness.GroupRates` (predictions
        counted per group) per protected attribute (``fairness.max_groups`` groups kept).
    ``attribution``
        prediction column → ``PredictionByBin.to_dict()`` of the flush (rows and prediction
        sums per feature bin, :mod:`raywatch.drift.attribution`), for the predictions the
        profile has a reference table for.

    A ``predictions`` item may carry a fourth element, its request's labels:
    ``{"s": {column: segment}, "f": {attribute: group}, "p": fairness prediction, "q": score}``,
    so that a label arriving later is counted in its segment and group.
    ``payload_log``
        (issue 14) the counters of the replica's payload log (``rows_written``,
        ``rows_dropped``, ``write_errors``, …), cumulative since the replica started, like
        ``dropped_total``; empty without a payload log.
    """

    app: str
    deployment: str
    replica_id: str
    start_ts: float
    end_ts: float
    model: Optional[str] = None
    version: Optional[str] = None
    node_id: Optional[str] = None
    requests: int = 0
    errors: Dict[str, int] = field(default_factory=dict)
    statuses: Dict[str, int] = field(default_factory=dict)
    latency: Dict[str, Any] = field(default_factory=dict)
    summary: Optional[bytes] = None
    predictions: List[Tuple[Any, ...]] = field(default_factory=list)  # (request_id, prediction, score[, labels])
    resources: Dict[str, Any] = field(default_factory=dict)
    dropped_total: int = 0
    capture_errors_total: int = 0
    seq: int = 0
    routes: Dict[str, int] = field(default_factory=dict)
    methods: Dict[str, int] = field(default_factory=dict)
    # data quality (issues 11 and 16): optional, see the class docstring
    wrong_types: Dict[str, List[str]] = field(default_factory=dict)
    redacted: Dict[str, str] = field(default_factory=dict)
    payloads_dropped_total: Dict[str, int] = field(default_factory=dict)
    profile_error: Optional[str] = None
    generation: Optional[str] = None
    """The deployment generation the replica belongs to: an opaque string, the same for
    every replica of one rollout and new with each deploy (e.g. Serve's code version of the
    deployment, or the time the app was deployed). With ``version``, it tells the stats
    actor when figures start fresh (see ``raywatch.aggregate.generations``); None: the
    version alone decides."""
    payload_log: Dict[str, int] = field(default_factory=dict)  # (issue 14) see the class docstring
    abandoned: List[List[int]] = field(default_factory=list)
    """``[seq, requests]`` of this replica's batches that were sent and then given up on
    (:mod:`raywatch.serve.shipper`): each may or may not have reached the actor. The actor
    counts a seq's requests as dropped only if it never stored it, and refuses it afterwards."""

    # who is affected (issue 12): optional, see the class docstring
    segments: Optional[Dict[str, Any]] = None
    segment_traffic: Optional[Dict[str, Any]] = None
    fairness: Optional[Dict[str, Any]] = None
    attribution: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def __setstate__(self, state: Dict[str, Any]) -> None:
        # a batch pickled by an older replica (or journaled in a schema-1 state file) lacks
        # the fields added since: they take their defaults
        self.__dict__.update(state)
        for f in dataclasses.fields(self):
            if f.name not in self.__dict__:
                self.__dict__[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    @property
    def model_key(self) -> str:
        return model_key(self.app, self.deployment)

    @property
    def error_count(self) -> int:
        return int(sum(self.errors.values()))

    def latency_sketch(self) -> LatencySketch:
        """The latency sketch, rebuilt from :attr:`latency` (an empty one if absent)."""
        return LatencySketch.from_dict(self.latency) if self.latency else LatencySketch()

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["predictions"] = [list(p) for p in self.predictions]
        return d

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ReplicaBatch":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown ReplicaBatch fields: {sorted(unknown)}")
        kwargs = dict(data)
        kwargs["predictions"] = [tuple(p) for p in kwargs.get("predictions") or []]
        return cls(**kwargs)
