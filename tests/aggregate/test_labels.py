"""Labels from outside are bounded in bytes and in distinct values; over a cap they are
refused and counted, never evicting real ones; the confusion matrix costs linear time
(issue 11, "locked doors", the core's part).

* a flood of labels is refused once the waiting labels are full, the real ones waiting stay
  and join — test_label_flood_never_evicts_waiting_labels
* waiting labels are bounded in bytes — test_waiting_labels_are_bounded_in_bytes
* distinct label values per classification model are capped (at admission and at the join)
  — test_distinct_label_values_are_capped
* ``result()`` with 8,000 distinct label values takes well under a second (it took 5.8 s)
  and agrees with a direct count — test_confusion_cost_is_linear_in_labels
"""

from __future__ import annotations

import time

import pytest

from raywatch.aggregate import StatsCore
from raywatch.config import MonitorConfig
from raywatch.drift.performance import ClassificationMetrics

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

T0 = 1_000_000.0


def core(profile, **feedback):
    c = StatsCore(MonitorConfig(windows={"length": 10.0, "grace": 0.0}, actor={"sqlite_path": None},
                                feedback=feedback))
    c.register_model("app/Model", {"model": "m", "feedback": feedback}, profile.to_bytes())
    return c


def test_label_flood_never_evicts_waiting_labels(profile):
    c = core(profile, max_pending=100)
    real = [(f"real-{i}", i % 2, "app/Model") for i in range(20)]
    assert c.feedback_items(real, now=T0)["accepted"] == 20
    flood = c.feedback_items([(f"junk-{i}", 1, None) for i in range(1000)], now=T0 + 1)
    assert flood["accepted"] == 1000 and flood["joined"] == 0  # journaled, then refused by the joiner
    assert c.refused == {"pending_full": 920}
    assert c.joiner.pending()["labels"] == 100
    preds = [(f"real-{i}", i % 2, 0.5) for i in range(20)]
    c.ingest(make_batch(profile, n=20, seq=1, ts=T0 + 2, predictions=preds), now=T0 + 2)
    assert c.status()["models"]["app/Model"]["totals"]["feedback_rows"] == 20  # every real label joined


def test_waiting_labels_are_bounded_in_bytes(profile):
    c = core(profile, max_pending_bytes=64 * 1024, max_label_bytes=1000)
    out = c.feedback_items([(f"id-{i}", "x" * 900, None) for i in range(200)], now=T0)
    assert c.joiner.label_bytes <= 64 * 1024 and c.refused["pending_full"] == 200 - c.joiner.pending()["labels"]
    assert out["accepted"] == 200 and c.joiner.pending()["labels"] < 70
    # one too long costs only itself
    out = c.feedback_items([("a", "y" * 1001, None), ("b", "ok", None)], now=T0)
    assert out["refused"] == {"too_large": 1} and out["accepted"] == 1


def test_distinct_label_values_are_capped(profile):
    c = core(profile, max_label_values=4)
    preds = [(f"q{i}", i % 3, 0.5) for i in range(30)]
    c.ingest(make_batch(profile, n=30, seq=1, ts=T0 + 1, predictions=preds), now=T0 + 1)
    out = c.feedback_items([(f"q{i}", i % 3, "app/Model") for i in range(10)], now=T0 + 2)
    assert out == {"accepted": 10, "joined": 10, "refused": {}}
    # values 0, 1, 2 known; 3 fits; 4 .. 9 are refused at admission, the known ones still pass
    out = c.feedback_items([(f"q{10 + i}", 3 + i, "app/Model") for i in range(7)] + [("q20", 2, "app/Model")],
                           now=T0 + 3)
    assert out == {"accepted": 2, "joined": 2, "refused": {"too_many_values": 6}}
    # a label without a model meets the cap when it joins
    assert c.feedback("q21", "brand-new", now=T0 + 4) is False
    assert c.refused["too_many_values"] == 7
    m = c.status()["models"]["app/Model"]
    assert m["label_values"] == 4 and m["refused"]["labels"] == 1 and m["totals"]["feedback_rows"] == 12


def _direct_macro(pairs):
    labels = sorted({x for p in pairs for x in p})
    per = []
    for lab in labels:
        tp = sum(1 for t, p in pairs if t == lab and p == lab)
        fp = sum(1 for t, p in pairs if p == lab and t != lab)
        fn = sum(1 for t, p in pairs if t == lab and p != lab)
        per.append((tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0,
                    2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0))
    return tuple(sum(v[i] for v in per) / len(per) for i in range(3))


def test_confusion_cost_is_linear_in_labels():
    small = [(f"l{i % 7}", f"l{(i * 3) % 7}") for i in range(50)] + [("l1", "l1")] * 5
    m = ClassificationMetrics()
    m.update([t for t, _ in small], [p for _, p in small])
    assert m.precision_recall_f1() == pytest.approx(_direct_macro(small))
    big = ClassificationMetrics()
    n = 8000
    big.update([f"l{i}" for i in range(n)], [f"l{(i * 7) % n}" for i in range(n)])
    t0 = time.perf_counter()
    r = big.result()
    assert time.perf_counter() - t0 < 1.0  # it was 5.8 s: labels x pairs
    assert r["rows"] == n and r["f1"] == pytest.approx(2 / n)  # l0 and l4000 are predicted right
