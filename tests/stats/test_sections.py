"""Sections and extensions: optional, versioned parts of summaries and profiles."""

import json
import logging

import numpy as np
import pytest

from raywatch.stats import FormatError, Profile, WindowSummary
from raywatch.stats import codec, sections
from raywatch.stats.comoments import CoMoments
from raywatch.stats.confidence import ConfidenceSection
from raywatch.stats.outliers import OutlierCounts
from raywatch.stats.reconstruction import ReconstructionErrors
from raywatch.stats.sections import Batch, Extension, Section, register
from raywatch.stats.vectors import VectorSection


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.normal(size=(n, 3))
    score = 1 / (1 + np.exp(-(x[:, 0] - x[:, 1])))
    return {
        "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "color": rng.choice(["red", "blue"], n),
        "proba": score, "y": (rng.random(n) < score).astype(int), "emb": rng.normal(size=(n, 24)),
    }


@pytest.fixture(scope="module")
def extended(data):
    return Profile.fit(data, seed=0, performance={"target": "y", "scores": "proba"}, correlation=True,
                       pca=True, outliers=True, vectors={"emb": {"dims": 4}})


def window(data, lo, hi):
    return {k: v[lo:hi] for k, v in data.items() if k != "y"}


def test_plain_profiles_and_summaries_keep_format_version_1(data):
    plain = Profile.fit({k: data[k] for k in ("a", "b", "color")}, seed=0)
    assert not plain.extensions
    assert codec.version_of(plain.to_bytes()) == 1
    s = plain.summarize({"a": data["a"][:50]})
    assert s.sections == {}
    assert codec.version_of(s.to_bytes()) == 1
    assert WindowSummary.from_bytes(s.to_bytes()) == s
    assert Profile.from_bytes(plain.to_bytes()).fingerprint == plain.fingerprint


def test_extended_profile_round_trips_with_version_2(extended, data, tmp_path):
    assert sorted(extended.extensions) == ["correlation", "outliers", "pca", "performance", "vector:emb"]
    assert "y" not in extended.columns and "emb" not in extended.columns  # target and vector kept apart
    blob = extended.to_bytes()
    assert codec.version_of(blob) == 2
    loaded = Profile.load(extended.save(tmp_path / "p.rwp"))
    assert loaded.fingerprint == extended.fingerprint
    w = window(data, 0, 300)
    assert loaded.summarize(w, seed=4) == extended.summarize(w, seed=4)
    s = extended.summarize(w, seed=4)
    assert sorted(s.sections) == sorted(extended.extensions)
    assert codec.version_of(s.to_bytes()) == 2
    assert WindowSummary.from_bytes(s.to_bytes()) == s


def test_extensions_change_the_fingerprint_and_summaries_do_not_mix(extended, data):
    plain = Profile.fit({k: v for k, v in data.items() if k not in ("y", "emb")}, seed=0)
    assert plain.fingerprint != extended.fingerprint
    with pytest.raises(ValueError, match="different profiles"):
        plain.summarize(window(data, 0, 10)).merge(extended.summarize(window(data, 0, 10)))


def test_merge_of_sections_equals_summary_of_concatenation(extended, data):
    a, b = extended.summarize(window(data, 0, 700)), extended.summarize(window(data, 700, 1500))
    whole = extended.summarize(window(data, 0, 1500))
    merged = a.merge(b)
    for name in whole.sections:
        ma, aa = merged.sections[name].state()
        mw, aw = whole.sections[name].state()
        assert ma == pytest.approx(mw, rel=1e-9), name
        for k in aw:
            np.testing.assert_allclose(aa[k], aw[k], rtol=1e-9, atol=1e-7, err_msg=f"{name}.{k}")


def test_a_summary_without_sections_merges_with_one_with_them(extended, data):
    s = extended.summarize(window(data, 0, 100))
    bare = extended.empty_summary()
    assert bare.sections == {}
    assert s.merge(bare).sections == s.sections == bare.merge(s).sections


def test_section_dicts_are_json_and_round_trip(extended, data):
    s = extended.summarize(window(data, 0, 200))
    for name, section in s.sections.items():
        again = Section.from_dict(json.loads(json.dumps(section.to_dict())))
        assert again == section, name
    for name, ext in extended.extensions.items():
        again = Extension.from_dict(json.loads(json.dumps(ext.to_dict())))
        assert again.fingerprint() == ext.fingerprint(), name


def test_every_builtin_section_kind_is_registered():
    for cls in (ConfidenceSection, CoMoments, ReconstructionErrors, OutlierCounts, VectorSection):
        assert sections.SECTIONS[cls.kind] is cls


def test_unknown_section_kinds_are_left_out_when_reading(extended, data):
    s = extended.summarize(window(data, 0, 100))
    table, arrays = sections.encode({"future": ReconstructionErrors(3, 1.0, 1.0)})
    table[0][1] = "from-a-newer-raywatch"
    meta, own = codec.unpack(s.to_bytes(), b"WS", (1, 2))
    meta["sections"] = meta["sections"] + [[*table[0][:1], "from-a-newer-raywatch", 1, {}, table[0][4]]]
    own.update({f"s{len(meta['sections']) - 1}.sums": arrays["s0.sums"]})
    back = WindowSummary.from_bytes(codec.pack(b"WS", 2, meta, own))
    assert sorted(back.sections) == sorted(s.sections)


def test_damaged_section_arrays_are_format_errors(extended, data):
    meta, arrays = codec.unpack(extended.summarize(window(data, 0, 100)).to_bytes(), b"WS", 2)
    i = [entry[0] for entry in meta["sections"]].index("correlation")
    arrays[f"s{i}.m2"] = arrays[f"s{i}.m2"][:-1]
    with pytest.raises(FormatError, match="correlation"):
        WindowSummary.from_bytes(codec.pack(b"WS", 2, meta, arrays))
    meta, arrays = codec.unpack(extended.summarize(window(data, 0, 100)).to_bytes(), b"WS", 2)
    i = [entry[0] for entry in meta["sections"]].index("outliers")
    arrays[f"s{i}.beyond"] = arrays[f"s{i}.values"] + 1  # more outliers than values
    with pytest.raises(FormatError, match="out of range"):
        WindowSummary.from_bytes(codec.pack(b"WS", 2, meta, arrays))


def test_a_profile_with_an_unknown_extension_is_refused(extended):
    meta, arrays = codec.unpack(extended.to_bytes(), b"PR", 2)
    meta["extensions"][0][1] = "no-such-kind"
    with pytest.raises(FormatError, match="extension this raywatch does not know"):
        Profile.from_bytes(codec.pack(b"PR", 2, meta, arrays))


def test_a_failing_extension_costs_only_its_section(extended, data, caplog):
    @register
    class Broken(Extension):
        kind = "test.broken"
        name = "broken"

        def summarize(self, batch):
            raise RuntimeError("boom")

        def state(self):
            return {}, {}

    p = extended.extend(Broken())
    with caplog.at_level(logging.WARNING, logger="raywatch.stats.profile"):
        s = p.summarize(window(data, 0, 50))
    assert "broken" not in s.sections and "performance" in s.sections
    assert "boom" in caplog.text


def test_batch_matrix_aligns_rows_and_marks_wrong_types_missing():
    b = Batch({"x": np.array([1.0, None, "a", 4], dtype=object), "y": np.arange(4.0)}, 4)
    m = b.matrix(["x", "y", "absent"])
    np.testing.assert_array_equal(np.isnan(m), [[0, 0, 1], [1, 0, 1], [1, 0, 1], [0, 0, 1]])
    assert m is b.matrix(["x", "y", "absent"])  # cached
    assert not m.flags.writeable
