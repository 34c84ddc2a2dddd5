"""Checksums are not validation (issue 11): bytes with a valid CRC are checked for sense, a
bad one costs only itself; profiles may be signed, and then must be.

* a summary with a valid CRC and ``rows=-1e9`` (and other implausible ones) is refused and
  counted; the rest of its batch is merged — test_implausible_summary_is_refused_and_counted,
  test_implausible_summaries_raise
* a profile whose bytes are valid but whose content is not — test_implausible_profile_raises
* a latency sketch with a wild offset costs only the latency figures —
  test_implausible_sketch_costs_only_itself
* with ``actor.profile_key``: unsigned and forged profiles refused, signed accepted, and
  checked again on recovery — test_profile_signing_*
"""

from __future__ import annotations

import numpy as np
import pytest

from raywatch.aggregate import StatsCore, Store
from raywatch.config import MonitorConfig
from raywatch.stats import signing
from raywatch.stats.codec import FormatError
from raywatch.stats.profile import Profile
from raywatch.stats.sketch import LatencySketch
from raywatch.stats.summary import WindowSummary, check_summaries, check_summary

from rw_batches import make_batch, profile, rows  # noqa: F401 (fixture)

T0 = 1_000_000.0


def core(profile, **actor):
    a = {"sqlite_path": None}
    a.update(actor)
    c = StatsCore(MonitorConfig(windows={"length": 10.0, "grace": 0.0}, actor=a))
    c.register_model("app/Model", {"model": "m"}, profile.to_bytes())
    return c


def tampered(profile, change):
    s = profile.summarize(rows(50, 1), seed=1)
    change(s)
    return s.to_bytes()  # a fresh, valid CRC over implausible content


def test_implausible_summary_is_refused_and_counted(profile):
    c = core(profile)

    def negative(s):
        s.rows = -1_000_000_000

    b = make_batch(profile, n=50, seq=1, ts=T0 + 1)
    b.summary = tampered(profile, negative)
    assert c.ingest(b, now=T0 + 1) == "ok"
    m = c.evaluate(now=T0 + 2)["models"]["app/Model"]
    assert m["refused"]["summaries"] == 1 and c.failures["ingest.summary"] == 1
    assert m["totals"]["requests"] == 50 and m["totals"]["rows"] == 0  # the counts merged, not the summary


@pytest.mark.parametrize("what, change", [
    ("negative rows", lambda s: setattr(s, "rows", -1_000_000_000)),
    ("negative count", lambda s: s.ints.__setitem__((0, 1), -5)),
    ("counts that do not add up", lambda s: s.ints.__setitem__((0, 1), s.ints[0, 1] + 7)),
    ("a histogram off its count", lambda s: s.counts.__setitem__(0, s.counts[0] + 3)),
    ("a NaN mean", lambda s: s.floats.__setitem__((0, 0), float("nan"))),
    ("bounds out of order", lambda s: s.floats.__setitem__((0, 2), 1e9)),
    ("a sample over its bound", lambda s: setattr(s, "sample_size", 1)),
    ("a huge sample bound", lambda s: setattr(s, "sample_size", 10 ** 12)),
    ("an infinite sample value", lambda s: s.samples[0][0].__setitem__(0, float("inf"))),
])
def test_implausible_summaries_raise(profile, what, change):
    good = profile.summarize(rows(50, 1), seed=1)
    assert WindowSummary.from_bytes(good.to_bytes()) == good
    with pytest.raises(FormatError, match="implausible window summary"):
        WindowSummary.from_bytes(tampered(profile, change))


def _numerical(s):
    return [i for i, k in enumerate(s.kinds) if k == "numerical"]


_CHANGES = [
    lambda s: setattr(s, "rows", -1_000_000_000),
    lambda s: s.ints.__setitem__((0, 1), -5),
    lambda s: s.ints.__setitem__((0, 1), s.ints[0, 1] + 7),
    lambda s: s.counts.__setitem__(0, s.counts[0] + 3),
    lambda s: s.floats.__setitem__((0, 0), float("nan")),
    lambda s: s.floats.__setitem__((0, 2), 1e9),
    lambda s: setattr(s, "sample_size", 1),
    lambda s: s.samples[0][0].__setitem__(0, float("inf")),
    lambda s: s.samples[_numerical(s)[-1]][1].__setitem__(0, 1.5),
    lambda s: s.floats.__setitem__((_numerical(s)[-1], 1), -1e-12),  # m2 a hair below 0: rounding, accepted
    lambda s: s.floats.__setitem__((_numerical(s)[-1], 1), -50.0),  # well below: damage
    lambda s: s.unknown_columns.__setitem__("extra", 10 ** 9),
]


def test_a_group_is_checked_as_each_alone(profile):
    """check_summaries (a replica batch group's summaries checked at once) gives each
    summary the verdict and message check_summary gives it alone, whatever its neighbours."""
    good = [WindowSummary.from_bytes(profile.summarize(rows(40, k), seed=k).to_bytes(), check=False) for k in range(3)]
    bad = [WindowSummary.from_bytes(tampered(profile, change), check=False) for change in _CHANGES]
    group = [good[0]] + [x for pair in zip(bad, good * 4) for x in pair]
    alone = [check_summary(s) for s in group]
    assert check_summaries([(s, None) for s in group]) == alone
    assert check_summaries([(s, s.flat_samples()) for s in group]) == alone
    assert alone[0] is None and sum(a is not None for a in alone) == len(_CHANGES) - 1  # all but the rounding
    assert check_summaries([]) == [] and check_summaries([(good[1], None)]) == [None]


def test_a_group_commit_refuses_only_its_implausible_summaries(profile):
    """The core checks a group commit's summaries together: the bad ones refused and
    counted, the good ones merged, every batch's counts merged."""
    c = core(profile)
    tickets = []
    for k in range(1, 7):
        b = make_batch(profile, n=50, seq=k, ts=T0 + 1)
        if k in (2, 5):
            b.summary = tampered(profile, _CHANGES[k])
        tickets.append(c.admit(b, now=T0 + 1))
    c.settle(tickets)
    assert [t.reply for t in tickets] == ["ok"] * 6
    m = c.evaluate(now=T0 + 2)["models"]["app/Model"]
    assert m["refused"]["summaries"] == 2 and c.failures["ingest.summary"] == 2
    assert m["totals"]["requests"] == 300 and m["totals"]["rows"] == 200


def test_a_group_check_that_fails_leaves_each_summary_to_its_own_check(profile, monkeypatch):
    import raywatch.aggregate.ingest as ingest

    monkeypatch.setattr(ingest, "check_summaries", lambda items: 1 / 0)
    c = core(profile)
    tickets = []
    for k in range(1, 4):
        b = make_batch(profile, n=50, seq=k, ts=T0 + 1)
        if k == 2:
            b.summary = tampered(profile, _CHANGES[2])
        tickets.append(c.admit(b, now=T0 + 1))
    c.settle(tickets)
    m = c.evaluate(now=T0 + 2)["models"]["app/Model"]
    assert m["refused"]["summaries"] == 1 and m["totals"]["rows"] == 100  # the bad one still refused, alone
    assert c.failures["ingest.summary"] == 2  # the group check's failure, and the refusal


@pytest.mark.parametrize("change", [
    lambda values, keys: keys.__setitem__(0, 2.0),  # a key beyond 1
    lambda values, keys: keys.__setitem__(-1, -0.5),  # a negative key
    lambda values, keys: values.__setitem__(0, float("nan")),  # a NaN value
], ids=["key>1", "key<0", "nan-value"])
def test_an_implausible_sample_names_its_column(profile, change):
    good = profile.summarize(rows(50, 1), seed=1)
    last = max(i for i, (v, _) in enumerate(good.samples) if v.size)  # the last column with a sample

    def spoil(s):
        values, keys = s.samples[last]
        s.samples[last] = (values.copy(), keys.copy())
        change(*s.samples[last])

    with pytest.raises(FormatError, match=f"column {good.names[last]!r}: its sample is out of bounds"):
        WindowSummary.from_bytes(tampered(profile, spoil))


def test_implausible_profile_raises(profile):
    p = Profile.from_bytes(profile.to_bytes())
    spec = p.specs["amount"]
    spec.edges = spec.edges[::-1].copy()  # unsorted edges, with a fingerprint and CRC to match
    p.fingerprint = p._fingerprint()
    p.reference.fingerprint = p.fingerprint
    with pytest.raises(FormatError, match="implausible profile: column 'amount': its bin edges"):
        Profile.from_bytes(p.to_bytes())


def test_implausible_sketch_costs_only_itself(profile):
    c = core(profile)
    sk = LatencySketch()
    sk.add_many([0.01, 0.02])
    bad = dict(sk.to_dict(), offset=10 ** 12)
    with pytest.raises(ValueError, match="implausible latency sketch"):
        LatencySketch.from_dict(bad)
    b = make_batch(profile, n=30, seq=1, ts=T0 + 1)
    b.latency = bad
    assert c.ingest(b, now=T0 + 1) == "ok"
    m = c.evaluate(now=T0 + 2)["models"]["app/Model"]
    assert m["totals"]["requests"] == 30 and m["totals"]["rows"] == 30 and m["refused"]["summaries"] == 1


def test_profile_signing_refuses_unsigned_and_forged(profile, monkeypatch):
    monkeypatch.setenv("RW_PROFILE_KEY", "the-key")
    c = StatsCore(MonitorConfig(actor={"sqlite_path": None, "profile_key": "${RW_PROFILE_KEY}"}))
    c.register_model("app/Unsigned", {"model": "u"}, profile.to_bytes())
    c.register_model("app/Forged", {"model": "f"}, signing.sign(profile.to_bytes(), "not-the-key"))
    c.register_model("app/Signed", {"model": "s"}, profile.sign("the-key"))
    st = c.status()["models"]
    assert st["app/Unsigned"]["profile"] is False and "not signed" in st["app/Unsigned"]["profile_refused"]
    assert st["app/Forged"]["profile"] is False and "does not match" in st["app/Forged"]["profile_refused"]
    assert st["app/Signed"]["profile"] is True and st["app/Signed"]["profile_refused"] is None
    assert c.failures["register.profile_signature"] == 2


def test_profile_signing_is_checked_again_on_recovery(profile, monkeypatch, tmp_path):
    path = str(tmp_path / "s.sqlite")
    c = StatsCore(MonitorConfig(actor={"sqlite_path": None}), Store(path))
    c.register_model("app/Model", {"model": "m"}, profile.to_bytes())  # no key then: stored unsigned
    c.store.close()
    monkeypatch.setenv("RW_PROFILE_KEY", "the-key")
    again = StatsCore(MonitorConfig(actor={"sqlite_path": None, "profile_key": "${RW_PROFILE_KEY}"}), Store(path))
    again.recover()
    assert again.status()["models"]["app/Model"]["profile"] is False


def test_signed_profiles_load_without_a_key(profile, tmp_path):
    f = tmp_path / "p.profile"
    f.write_bytes(profile.sign("k"))
    assert Profile.load(f).fingerprint == profile.fingerprint
    c = core(profile)  # no key configured: a signed profile is read, its signature unchecked
    c.register_model("app/Model", {"model": "m"}, f.read_bytes())
    assert c.status()["models"]["app/Model"]["profile"] is True
    assert np.array_equal(Profile.from_bytes(f.read_bytes()).reference.counts, profile.reference.counts)
