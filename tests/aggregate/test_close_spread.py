"""Spread window closing (``windows.close_spread``): on a shard of many models, each model
closes its windows at its own phase after ``end + grace``, so that one evaluation cycle does
not close and test every model's window at once (issue 15's many-models cycle). Nothing is
lost: a batch that comes after ``end + grace`` but before its model closed the window is
filed under its own window, and every request ends up in exactly one closed window."""

from __future__ import annotations

import collections

import pytest

from raywatch.aggregate import StatsCore
from raywatch.aggregate.evaluate import SPREAD_ABOVE, close_delay, close_spread
from raywatch.config import MonitorConfig
from rw_batches import make_batch

T0 = 1_000_020.0  # a multiple of 60
LENGTH, GRACE, CYCLE = 60.0, 5.0, 10.0


def fleet(models: int, **windows):
    w = {"length": LENGTH, "rolling": 3, "grace": GRACE, "evaluation_interval": CYCLE, **windows}
    core = StatsCore(MonitorConfig(windows=w, actor={"sqlite_path": None}, alerting={"watchdog": False}))
    keys = [f"app/m{i:03d}" for i in range(models)]
    for k in keys:
        core.register_model(k, {}, None, now=T0)
    return core, keys


def run(core, keys, cycles: int, late_at=None, late_cycle=7):
    """One 3-request batch per model per cycle (ending 1 s before the cycle); returns
    ``{window end: {cycle time: models that closed it then}}`` and the requests sent."""
    closes = collections.defaultdict(collections.Counter)
    sent, seq = collections.Counter(), collections.Counter()
    run.closed = collections.Counter()  # requests in the windows each model closed
    for c in range(1, cycles + 1):
        now = T0 + c * CYCLE
        for k in keys:
            app, dep = k.split("/")
            ts = [now - 1.0] + ([late_at] if late_at is not None and c == late_cycle else [])
            for t in ts:
                seq[k] += 1
                assert core.ingest(make_batch(None, n=3, seq=seq[k], app=app, deployment=dep, ts=t, span=0.5), now=now) == "ok"
                sent[k] += 3
        core.evaluate(now=now, want_status=False)
        assert not core.failures, core.failures
        for k in keys:
            for res in core.models[k].view["closed"]:
                closes[res["end"]][now] += 1
                run.closed[k] += res["requests"]
    return closes, sent


def test_auto_spread_only_on_a_shard_of_many_models():
    wc = MonitorConfig(windows={"length": LENGTH, "grace": GRACE, "evaluation_interval": CYCLE}).windows
    assert close_spread(wc, SPREAD_ABOVE) == 0.0
    assert close_spread(wc, SPREAD_ABOVE + 1) == LENGTH - CYCLE
    assert close_spread(wc.model_copy(update={"close_spread": 0.0}), 500) == 0.0
    assert close_spread(wc.model_copy(update={"close_spread": 12.0}), 1) == 12.0
    short = MonitorConfig(windows={"length": 5, "grace": 5, "evaluation_interval": 10}).windows
    assert close_spread(short, 500) == 0.0  # never negative


def test_delays_are_whole_intervals_spread_evenly():
    phases = [i / 600 for i in range(600)]
    delays = [close_delay(p, 50.0, 10.0) for p in phases]
    assert sorted(set(delays)) == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert all(delays.count(d) == 100 for d in set(delays))  # an even share each
    assert {close_delay(p, 9.0, 10.0) for p in phases} == {0.0}  # less than an interval: no spread
    assert {close_delay(p, 0.0, 10.0) for p in phases} == {0.0}


def test_many_models_close_a_window_over_several_cycles_and_lose_nothing():
    core, keys = fleet(100)
    closes, sent = run(core, keys, cycles=20)
    first = closes[T0 + LENGTH]  # the window [T0, T0 + 60)
    assert sum(first.values()) == 100  # every model closed it, once
    spread = LENGTH - CYCLE
    assert min(first) >= T0 + LENGTH + GRACE and max(first) <= T0 + LENGTH + GRACE + spread + CYCLE
    assert len(first) == 6 and max(first.values()) <= 30, first  # an even share in each of 6 cycles
    for k in keys:  # every request in exactly one window, closed or open
        ms = core.models[k]
        held = run.closed[k] + sum(w.requests for w in ms.open.values())
        assert held == sent[k] == ms.totals["requests"]
        assert ms.totals["late_batches"] == 0


def test_few_models_or_spread_off_close_every_window_at_end_plus_grace():
    for core, keys in (fleet(SPREAD_ABOVE), fleet(100, close_spread=0)):
        closes, _ = run(core, keys, cycles=8)
        assert closes[T0 + LENGTH] == {T0 + 7 * CYCLE: len(keys)}  # the first cycle at or past end + grace


def test_a_batch_after_grace_files_under_its_window_while_it_is_open():
    core, keys = fleet(100)
    spread = LENGTH - CYCLE
    # at cycle 9 (T0 + 90, well past the first window's end + grace) a batch of that window
    # comes: a model that closed it in cycle 7 or 8 (a delay of 0 or 10 s) files it under the
    # earliest open window (a late batch), the others under the first window, still open
    closes, sent = run(core, keys, cycles=12, late_at=T0 + 50.0, late_cycle=9)
    own = {k for k in keys if close_delay(core.models[k].close_phase, spread, CYCLE) > 10.0}
    assert 10 < len(own) < 90
    for k in keys:
        ms = core.models[k]
        first = next(w for w in ms.closed if w.start == T0)
        assert (first.requests, ms.totals["late_batches"]) == ((6 * 3 + 3, 0) if k in own else (6 * 3, 1))
        assert run.closed[k] + sum(w.requests for w in ms.open.values()) == sent[k]


def test_a_models_phase_is_the_same_in_every_process():
    import subprocess
    import sys

    code = "from raywatch.aggregate.model import ModelState as M; from raywatch.config import MonitorConfig as C; " \
           "print(M('app/model-001', {}, C()).close_phase)"
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(out) == 1 and 0.0 <= float(out.pop()) < 1.0
