"""A model's streaming detectors, with state stored as data: method, parameters and a replay.

river's detectors keep their state in compiled objects (ADWIN's window lives in Rust), which
cannot be written out as data. :class:`Detector` therefore remembers, besides the river
detector it drives, the last :data:`REPLAY` values it was fed. Its state is a
``raywatch.detector`` record, version 1::

    {"format": "raywatch.detector", "version": 1, "method": "adwin", "params": {},
     "n": 1234, "detections": 2, "skipped": 0, "replay": [0.012, 0.013, ...]}

:meth:`Detector.from_state` builds a fresh detector with the same method and parameters and
feeds it the replay: the restored detector has seen the recent stream again (a detector's
window or cumulative sums are shaped by recent values; what lies further back than the
replay is forgotten, as an adaptive window forgets it too). A drift found while replaying
is not a new detection. A detector that cannot be restored (a record of another version, a
method that no longer exists, a v1 file's pickled river object) starts fresh, and the model
counts the restart (status shows it per detector).

>>> d = Detector("page_hinkley", {"threshold": 20.0})
>>> hits = [i for i, x in enumerate([0.0] * 200 + [5.0] * 50) if d.update(x)]
>>> again = Detector.from_state(d.state())
>>> hits[:1], again.n, again.detections, len(again.state()["replay"]) <= REPLAY
([204], 250, 1, True)
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Deque, Dict, Mapping

from raywatch.aggregate.data import fields, record
from raywatch.drift.streaming import StreamingDetector, make_detector

__all__ = ["Detector", "REPLAY", "NAMES"]

log = logging.getLogger("raywatch.aggregate.detectors")

FORMAT, VERSION = "raywatch.detector", 1
REPLAY = 1000
"""Values each detector keeps for its replay."""

NAMES = ("latency", "errors", "concept")
"""The streaming detectors of a model: mean latency and error rate per batch, and the error
indicator (1 = wrong) of each joined label."""


class Detector:
    """A :class:`~raywatch.drift.streaming.StreamingDetector` plus the replay of its input."""

    def __init__(self, method: str, params: Mapping[str, Any], replay: int = REPLAY):
        self.method = method
        self.params = dict(params)
        self.detector: StreamingDetector = make_detector(method, **self.params)
        self.recent: Deque[float] = deque(maxlen=replay)

    @property
    def n(self) -> int:
        return self.detector.n

    @property
    def detections(self) -> int:
        return self.detector.detections

    def update(self, x: float) -> bool:
        """Feed one value; True when drift is detected at it."""
        hit = self.detector.update(x)
        self.recent.append(float(x))
        return hit

    def state(self) -> Dict[str, Any]:
        d = self.detector
        return record(FORMAT, VERSION, method=self.method, params=dict(self.params), n=d.n,
                      detections=d.detections, skipped=d.skipped, replay=list(self.recent))

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Detector":
        """A fresh detector fed the replay; ValueError when ``state`` cannot be used."""
        s = fields(dict(state), FORMAT, VERSION)
        out = cls(str(s["method"]), s.get("params") or {})
        for x in s.get("replay") or []:
            out.update(float(x))
        d = out.detector
        d.n, d.detections, d.skipped = int(s.get("n", d.n)), int(s.get("detections", d.detections)), int(s.get("skipped", 0))
        return out

    def __repr__(self) -> str:
        return f"Detector({self.method!r}, n={self.n}, replay={len(self.recent)})"
