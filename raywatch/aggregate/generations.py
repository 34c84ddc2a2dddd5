"""Deployment generations: a new deployment or version of a model starts fresh figures.

The stats actor keeps a model's state by its key (``"app/deployment"``) in a state file that
outlives deployments (``~/.raywatch`` by default). Without more, a new deployment of the same
app inherited the old one's counts, replicas and detectors. A model's figures therefore
belong to a *generation*, identified by what each replica batch says:

* ``version`` — the model's version label (``MonitorConfig.version``), and
* ``generation`` — an opaque deployment epoch the replica sends
  (:attr:`raywatch.stats.batch.ReplicaBatch.generation`: equal for every replica of one
  rollout, new with each deploy).

:func:`generation_key` joins them (``"v2|<epoch>"``); a batch that carries neither says
nothing and changes nothing. The first batch with a key the model has never seen starts a
new generation (:func:`start`): windows, totals, replicas, detectors, error types and label
values start empty, the feedback join forgets the old generation's predictions, and the
old key is remembered (the last :data:`REMEMBERED`). A later batch of a remembered,
superseded generation — an old replica still draining during a rollout — is *stale*: it is
not merged, counted per model (``refused["stale_batches"]``) and acknowledged (the replica
must not retry it). The closed windows already in the history stay. A model whose state
predates generations adopts its first batch's key unless that batch says otherwise
(:func:`classify`). A model's current generation is stored with its state
(``generation`` in the ``raywatch.model-state`` record) and shown in status.

>>> from raywatch.stats.batch import ReplicaBatch
>>> b = ReplicaBatch(app="a", deployment="M", replica_id="r", start_ts=0.0, end_ts=1.0, version="v2",
...                  generation="2024-05-01T10:00:00Z")
>>> generation_key(b), generation_key(ReplicaBatch(app="a", deployment="M", replica_id="r", start_ts=0.0, end_ts=1.0))
('v2|2024-05-01T10:00:00Z', None)
"""

from __future__ import annotations

import logging
from typing import Optional

from raywatch.aggregate.model import ModelState
from raywatch.stats.batch import ReplicaBatch

__all__ = ["generation_key", "classify", "start", "NEW", "SAME", "STALE", "REMEMBERED"]

log = logging.getLogger("raywatch.aggregate.generations")

NEW, SAME, STALE = "new", "same", "stale"
REMEMBERED = 16
"""Superseded generations a model remembers (their late batches are stale)."""


def generation_key(b: ReplicaBatch) -> Optional[str]:
    """The generation a batch belongs to, or None when it does not say."""
    version, epoch = b.version or "", getattr(b, "generation", None) or ""
    if not version and not epoch:
        return None
    return f"{version}|{epoch}"


def classify(ms: ModelState, key: Optional[str], version: Optional[str] = None) -> str:
    """:data:`SAME` (or unknown), :data:`NEW` (never seen) or :data:`STALE` (superseded);
    ``version`` is the model's version label before this batch (default: its label now).

    A model whose state predates generations (none recorded) adopts the key of its first
    batch when nothing says it changed: no figures yet, or the batch carries no deployment
    epoch and the same version as the model's label. A batch with an epoch, or another
    version, starts a new generation (an old state file meeting a new deployment)."""
    if key is None or key == ms.generation:
        return SAME
    if ms.generation is None:
        ver, _, epoch = key.partition("|")
        label = version if version is not None else ms.labels.get("version")
        if not ms.totals["batches"] or (not epoch and ver in ("", label or "")):
            return SAME
        return NEW
    return STALE if key in ms.past_generations else NEW


def start(ms: ModelState, key: str) -> None:
    """Start generation ``key`` of ``ms``: fresh figures (see the module docstring)."""
    old = ms.generation
    if old is not None:
        ms.past_generations = ([g for g in ms.past_generations if g != old] + [old])[-REMEMBERED:]
    log.info("model %s: generation %s starts (was %s): its figures start fresh", ms.key, key, old)
    ms.open = {}
    ms.closed.clear()
    ms.first_seen = None
    ms.replicas = {}
    ms.retired = {"dropped": 0, "capture_errors": 0}
    for k in ms.totals:
        ms.totals[k] = 0
    ms.error_types = {}
    ms.detectors = {}
    ms.detector_hits = {}
    ms.detector_counts = {}
    ms.label_values = set()
    ms.view = {}
    ms.series = []
    ms.generation = key
    ms.generations += 1
