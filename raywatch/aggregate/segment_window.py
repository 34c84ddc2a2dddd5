"""Per-window segment state of one model: what the stats actor merges for issue 12.

A :class:`SegmentWindow` rides on a :class:`~raywatch.aggregate.windows.Window` (its
``segments`` attribute, None until a batch or a label brings something) and holds:

* ``summaries``: the window's :class:`~raywatch.stats.segments.Segments` of window summaries
  (from the replicas' ``ReplicaBatch.segments``);
* ``traffic``: the same of :class:`~raywatch.stats.segment_traffic.SegmentTraffic` (requests,
  errors, latency per segment);
* ``perf``: the same of performance accumulators, from labels joined to their predictions,
  counted in the segment their request was in (the labels the prediction carried);
* ``fairness``: per protected attribute, :class:`~raywatch.drift.fairness.GroupRates`: the
  replicas' prediction counts plus the outcomes of the joined labels, per group;
* ``attribution``: per prediction, the window's attribution table;
* ``replicas``: per replica (at most :data:`MAX_REPLICAS`), its version, window summary and
  latency sketch, for the peer comparison of replica outliers.

Each window keeps at most ``segments.top_k`` values per column (``fairness.max_groups`` per
attribute) plus ``__other__``, whatever the replicas send: merges go through a container of
the model's own ``k``. Parts are merged when read (k-way, like the window's summary), and a
pending label table past :data:`_PENDING_MAX` entries is folded at once, so a flood of
distinct labels costs no more memory than ``k`` segments.

What the replicas send is checked before it is merged (a bad part costs only itself,
counted as a refused summary): summaries must be of the model's profile, group rates of
its favourable outcome, attribution tables of its profile's reference layout.

State is data: :meth:`SegmentWindow.state` is JSON-able (summaries as base64 of their codec
bytes) and :meth:`SegmentWindow.from_state` reads it back, checking bounds as it reads.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from raywatch.aggregate.data import b64, unb64
from raywatch.drift.attribution import PredictionByBin
from raywatch.drift.attribution_tables import reference_tables, table_from_state, table_state
from raywatch.drift.fairness import GroupRates
from raywatch.drift.performance import ClassificationMetrics, RegressionMetrics
from raywatch.drift.performance import _label_key as label_key
from raywatch.stats.labels import MAX_LABEL_LENGTH
from raywatch.stats.segment_traffic import SegmentTraffic
from raywatch.stats.segments import Segments, decode_summary, encode_state
from raywatch.stats.sketch import LatencySketch
from raywatch.stats.summary import WindowSummary

__all__ = ["SegmentWindow", "clean_tags", "ingest_batch", "ingest_label", "MAX_REPLICAS"]

log = logging.getLogger("raywatch.aggregate.segment_window")

MAX_REPLICAS = 64
"""Replicas whose own summary a window keeps for the peer comparison; more are counted."""
_PENDING_MAX = 64  # parts held before one merge
_MAX_TAGS = 32
_MAX_TAG = 4 * MAX_LABEL_LENGTH


def clean_tags(tags: Any) -> Optional[Dict[str, Any]]:
    """A prediction's segment labels as the replica sent them, checked and bounded (None when
    there is nothing usable): ``{"s": {column: label}, "f": {attribute: group}, "p": the
    fairness prediction, "q": its score}``.

    >>> clean_tags({"s": {"country": "fr"}, "f": {"sex": "h:ab"}, "p": 1, "q": 0.8, "x": [1]})
    {'s': {'country': 'fr'}, 'f': {'sex': 'h:ab'}, 'p': 1, 'q': 0.8}
    >>> clean_tags({"s": {"c": "x" * 1000}}) is None
    True
    """
    if not isinstance(tags, Mapping):
        return None
    out: Dict[str, Any] = {}
    for key in ("s", "f"):
        part = tags.get(key)
        if not isinstance(part, Mapping):
            continue
        kept = {str(k): v for k, v in list(part.items())[:_MAX_TAGS]
                if isinstance(k, str) and isinstance(v, str) and len(k) <= _MAX_TAG and len(v) <= _MAX_TAG}
        if kept:
            out[key] = kept
    if "f" in out:
        p, q = tags.get("p"), tags.get("q")
        if isinstance(p, (bool, int, float, str)) and not (isinstance(p, str) and len(p) > _MAX_TAG):
            out["p"] = p
        if isinstance(q, (int, float)) and not isinstance(q, bool):
            out["q"] = float(q)
    return out or None


def _merge_all(parts: List[Segments], k: int) -> Optional[Segments]:
    if not parts:
        return None
    out = Segments(k)
    for p in parts:
        out = out.merge(p)
    return out


def _perf_from_dict(d: Mapping[str, Any]) -> Any:
    return ClassificationMetrics.from_dict(dict(d)) if d.get("kind") == "classification" \
        else RegressionMetrics.from_dict(dict(d))


class _Replica:
    __slots__ = ("version", "summaries", "latency")

    def __init__(self, version: str):
        self.version = version
        self.summaries: List[WindowSummary] = []
        self.latency = LatencySketch()

    def summary(self) -> Optional[WindowSummary]:
        if len(self.summaries) > 1:
            self.summaries = [WindowSummary.merge_all(self.summaries)]
        return self.summaries[0] if self.summaries else None


class SegmentWindow:
    """One window's segment state (see the module docstring)."""

    def __init__(self, k: int = 20, max_groups: int = 20):
        self.k = int(k)
        self.max_groups = int(max_groups)
        self._summaries: List[Segments] = []
        self._traffic: List[Segments] = []
        self._fairness: List[Segments] = []
        self._perf: List[Segments] = []
        self._labels: Dict[Tuple[str, str], Any] = {}  # (column, label) -> [accumulator, rows]
        self._outcomes: Dict[Tuple[str, str], GroupRates] = {}
        self.attribution: Dict[str, PredictionByBin] = {}
        self.replicas: Dict[str, _Replica] = {}
        self.untracked_replicas = 0

    # ------------------------------------------------------------------ reading
    @property
    def summaries(self) -> Optional[Segments]:
        if len(self._summaries) > 1 or (self._summaries and self._summaries[0].k != self.k):
            self._summaries = [_merge_all(self._summaries, self.k)]
        return self._summaries[0] if self._summaries else None

    @property
    def traffic(self) -> Optional[Segments]:
        if len(self._traffic) > 1:
            self._traffic = [_merge_all(self._traffic, self.k)]
        return self._traffic[0] if self._traffic else None

    @property
    def perf(self) -> Optional[Segments]:
        self._fold_labels()
        if len(self._perf) > 1:
            self._perf = [_merge_all(self._perf, self.k)]
        return self._perf[0] if self._perf else None

    @property
    def fairness(self) -> Optional[Segments]:
        if self._outcomes:
            outcomes = [Segments.of(attr, group, g, 0) for (attr, group), g in self._outcomes.items()]
            self._outcomes = {}
            self._fairness.extend(outcomes)
        if len(self._fairness) > 1:
            self._fairness = [_merge_all(self._fairness, self.max_groups)]
        return self._fairness[0] if self._fairness else None

    def replica_parts(self) -> Dict[str, Tuple[str, Optional[WindowSummary], LatencySketch]]:
        """Replica → (version, its summary or None, its latency sketch)."""
        return {rid: (r.version, r.summary(), r.latency) for rid, r in self.replicas.items()}

    def _fold_labels(self) -> None:
        if self._labels:
            parts = [Segments.of(col, label, acc, rows) for (col, label), (acc, rows) in self._labels.items()]
            self._labels = {}
            self._perf.append(_merge_all(parts, self.k))

    def _pending(self, parts: List[Segments], k: int) -> None:
        if len(parts) >= _PENDING_MAX:
            parts[:] = [_merge_all(parts, k)]

    # ------------------------------------------------------------------ adding
    def add_batch(self, b: Any, profile: Any, favourable: Any, summary: Optional[WindowSummary],
                  sketch: Optional[LatencySketch], refuse: Callable[[str, BaseException], None],
                  peers: bool = True) -> None:
        """Merge a replica batch's segment fields; each part that fails its checks is left out
        and reported to ``refuse(what, error)``. With ``peers``, the replica's own ``summary``
        and latency ``sketch`` are kept for the peer comparison."""
        # before the model's profile is registered (a replica's first batches can overtake its
        # registration), the batch's own summary says which profile its parts must be of
        fp = getattr(profile, "fingerprint", None) or getattr(summary, "fingerprint", None)
        if b.segments:
            try:
                seg = Segments.from_dict(b.segments, decode_summary)
                made = {s.fingerprint for c in seg.columns for _, s, _ in seg.items(c) if s is not None}
                if seg.whole is not None:
                    made.add(seg.whole.fingerprint)
                if (made - {fp}) if fp is not None else len(made) > 1:
                    raise ValueError("per-segment summaries made with another profile than the model's")
                seg.whole = None  # the batch's summary is the window's already
                self._summaries.append(seg)
                self._pending(self._summaries, self.k)
            except Exception as exc:
                refuse("segments", exc)
        if b.segment_traffic:
            try:
                self._traffic.append(Segments.from_dict(b.segment_traffic, SegmentTraffic.from_dict))
                self._pending(self._traffic, self.k)
            except Exception as exc:
                refuse("segment_traffic", exc)
        if b.fairness:
            try:
                fair = Segments.from_dict(b.fairness, GroupRates.from_dict)
                want = label_key(favourable)
                if any(g.favourable != want for c in fair.columns for _, g, _ in fair.items(c) if g is not None):
                    raise ValueError(f"group rates counted for another favourable outcome than {favourable!r}")
                self._fairness.append(fair)
                self._pending(self._fairness, self.max_groups)
            except Exception as exc:
                refuse("fairness", exc)
        if b.attribution:
            refs = reference_tables(profile)
            for pred, data in list(b.attribution.items())[:16]:
                try:
                    ref = refs.get(pred)
                    if ref is None:
                        raise ValueError(f"the profile has no reference table for {pred!r}")
                    t = PredictionByBin.from_dict(data, profile)
                    if (t.features, t.positive) != (ref.features, ref.positive):
                        raise ValueError(f"the table of {pred!r} is not laid out as the reference's")
                    self.attribution[pred] = t if pred not in self.attribution else self.attribution[pred].merge(t)
                except Exception as exc:
                    refuse(f"attribution.{pred}", exc)
        if not peers:
            return
        rid = str(b.replica_id)
        rep = self.replicas.get(rid)
        if rep is None:
            if len(self.replicas) >= MAX_REPLICAS:
                self.untracked_replicas += 1
                return
            rep = self.replicas[rid] = _Replica(str(b.version or ""))
        if summary is not None and summary.fingerprint == fp:
            rep.summaries.append(summary)
            if len(rep.summaries) >= _PENDING_MAX:
                rep.summary()
        if sketch is not None and sketch.count:
            rep.latency.merge(sketch)

    def add_label(self, tags: Mapping[str, Any], acc: Any, label: Any, favourable: Any) -> None:
        """A label joined to its prediction: ``acc`` (its performance accumulator) into the
        segment of each column its request was in, and its outcome into its fairness groups."""
        for col, seg in (tags.get("s") or {}).items():
            key = (col, seg)
            have = self._labels.get(key)
            self._labels[key] = [acc, 1] if have is None else [have[0].merge(acc), have[1] + 1]
        if len(self._labels) > _PENDING_MAX * max(1, self.k // 4):
            self._fold_labels()
        groups = tags.get("f") or {}
        if groups and "p" in tags:
            for attr, group in groups.items():
                g = GroupRates(favourable)
                g.add_outcomes([label], [tags["p"]], None if tags.get("q") is None else [tags["q"]])
                key = (attr, group)
                self._outcomes[key] = g if key not in self._outcomes else self._outcomes[key].merge(g)
            if len(self._outcomes) > _PENDING_MAX * max(1, self.max_groups // 4):
                self.fairness  # noqa: B018 - folds the outcomes

    # ------------------------------------------------------------------ folding
    @classmethod
    def merged(cls, parts: Iterable[Optional["SegmentWindow"]]) -> Optional["SegmentWindow"]:
        """One state holding all of ``parts`` (the rolling view); None when none has any."""
        ps = [p for p in parts if p is not None]
        if not ps:
            return None
        out = cls(min(p.k for p in ps), min(p.max_groups for p in ps))
        for p in ps:
            for name in ("summaries", "traffic", "perf", "fairness"):
                v = getattr(p, name)
                if v is not None:
                    getattr(out, "_" + name).append(v)
            for pred, t in p.attribution.items():
                try:
                    out.attribution[pred] = t if pred not in out.attribution else out.attribution[pred].merge(t)
                except ValueError:  # a table of an earlier profile: the newer one stands
                    out.attribution[pred] = t
            for rid, r in p.replicas.items():
                dst = out.replicas.get(rid)
                if dst is None:
                    if len(out.replicas) >= MAX_REPLICAS:
                        out.untracked_replicas += 1
                        continue
                    dst = out.replicas[rid] = _Replica(r.version)
                dst.version = r.version
                s = r.summary()
                if s is not None and (not dst.summaries or dst.summaries[0].fingerprint == s.fingerprint):
                    dst.summaries.append(s)
                dst.latency.merge(r.latency)
            out.untracked_replicas += p.untracked_replicas
        return out

    # ------------------------------------------------------------------ persistence
    def state(self) -> Dict[str, Any]:
        """JSON-able state (see the module docstring)."""
        def seg(s: Optional[Segments], enc: Callable[[Any], Any] = encode_state) -> Optional[Dict[str, Any]]:
            return None if s is None else s.to_dict(enc)

        return {
            "k": self.k, "max_groups": self.max_groups,
            "summaries": seg(self.summaries), "traffic": seg(self.traffic), "perf": seg(self.perf),
            "fairness": seg(self.fairness),
            "attribution": {p: table_state(t) for p, t in self.attribution.items()},
            "replicas": [{"replica_id": rid, "version": r.version,
                          "summary": None if r.summary() is None else b64(r.summary().to_bytes()),
                          "latency": r.latency.to_dict()} for rid, r in self.replicas.items()],
            "untracked_replicas": self.untracked_replicas,
        }

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> "SegmentWindow":
        out = cls(int(s.get("k", 20)), int(s.get("max_groups", 20)))
        for name, decode in (("summaries", decode_summary), ("traffic", SegmentTraffic.from_dict),
                             ("perf", _perf_from_dict), ("fairness", GroupRates.from_dict)):
            if s.get(name):
                getattr(out, "_" + name).append(Segments.from_dict(s[name], decode))
        out.attribution = {str(p): table_from_state(d) for p, d in (s.get("attribution") or {}).items()}
        for r in (s.get("replicas") or [])[:MAX_REPLICAS]:
            rep = out.replicas[str(r["replica_id"])] = _Replica(str(r.get("version") or ""))
            blob = unb64(r.get("summary"))
            if blob is not None:
                rep.summaries.append(WindowSummary.from_bytes(blob))
            rep.latency = LatencySketch.from_dict(r.get("latency") or {})
        out.untracked_replicas = int(s.get("untracked_replicas", 0))
        return out


def _state_of(ms: Any, w: Any) -> SegmentWindow:
    sw = w.segments
    if sw is None:
        sw = w.segments = SegmentWindow(ms.config.segments.top_k, ms.config.fairness.max_groups)
    return sw


def ingest_batch(ms: Any, w: Any, b: Any, summary: Optional[WindowSummary], sketch: Optional[LatencySketch],
                 fail: Callable[[str, BaseException], None]) -> None:
    """Merge batch ``b``'s segment parts into window ``w`` of model ``ms``; a refused part is
    counted in the model's ``refused["summaries"]`` and under the failure stage ``ingest.segments``."""
    # a replica's own summary is kept only where a peer comparison can name one: three replicas or more
    peers = ms.config.attribution.replicas.enabled and len(ms.replicas) >= 3
    if not (b.segments or b.segment_traffic or b.fairness or b.attribution or peers):
        return

    def refuse(what: str, exc: BaseException) -> None:
        ms.refused["summaries"] += 1
        fail("ingest.segments", ValueError(f"{ms.key}: {what}: {exc}"))

    _state_of(ms, w).add_batch(b, ms.profile, ms.config.fairness.favourable, summary if peers else None,
                               sketch if peers else None, refuse, peers=peers)


def ingest_label(ms: Any, w: Any, tags: Any, acc: Any, label: Any) -> None:
    """A joined label's accumulator into the segments and groups its prediction's ``tags`` name."""
    if tags:
        _state_of(ms, w).add_label(tags, acc, label, ms.config.fairness.favourable)
