import math
import warnings

import numpy as np
import pytest

import raywatch
from raywatch.stats import FormatError, Profile, WindowSummary


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    n = 10_000
    return {
        "income": rng.lognormal(10, 1, n),
        "age": rng.integers(18, 90, n),
        "country": rng.choice(["fr", "de", "es", "it"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "member": rng.random(n) < 0.3,
        "tags": np.array([f"t{i % 120}" for i in range(n)], dtype=object),
    }


def test_public_entry_points_are_exported(data):
    profile = raywatch.Profile.fit(data, seed=1)
    assert isinstance(profile, Profile)
    assert raywatch.WindowSummary is WindowSummary
    report = raywatch.detect_drift(profile, data)
    assert isinstance(report, raywatch.DriftReport)


def test_kinds_are_inferred_and_overridable(data):
    profile = Profile.fit(data, seed=1)
    assert profile.kinds == {
        "income": "numerical",
        "age": "numerical",
        "country": "categorical",
        "member": "boolean",
        "tags": "categorical",
    }
    assert profile.columns == list(data)
    profile = Profile.fit(data, kinds={"age": "categorical"}, seed=1)
    assert profile.kinds["age"] == "categorical"
    assert len(profile.categories("age")) == 50  # max_categories; the rest in the overflow bucket


def test_object_columns_are_inferred_from_their_values():
    profile = Profile.fit(
        {"n": [1, 2.5, None, 4], "b": [True, False, None, True], "s": ["a", 1, "b", None]}, seed=0
    )
    assert profile.kinds == {"n": "numerical", "b": "boolean", "s": "categorical"}


def test_quantile_edges_give_equal_reference_mass(data):
    profile = Profile.fit(data, bins=20, seed=1)
    counts = profile.reference.column("income").counts
    assert counts.size == 20
    assert counts.min() >= 490 and counts.max() <= 510  # 10,000 / 20, up to interpolation
    edges = profile.edges("income")
    assert np.all(np.diff(edges) > 0)
    assert edges[0] > data["income"].min() and edges[-1] < data["income"].max()


def test_outer_bins_are_open_to_infinity(data):
    profile = Profile.fit(data, bins=10, seed=1)
    s = profile.summarize({"income": [-1e300, 1e300, data["income"].min(), data["income"].max()]})
    col = s.column("income")
    assert col.counts[0] == 2 and col.counts[-1] == 2
    assert col.out_of_range == 2
    assert col.count == 4


def test_tied_values_collapse_edges():
    profile = Profile.fit({"x": np.repeat([1.0, 2.0, 3.0], 1000)}, bins=100, seed=0)
    assert profile.edges("x").tolist() == [1.0, 2.0, 3.0]
    assert profile.reference.column("x").counts.tolist() == [1000, 1000, 1000, 0]


def test_reference_moments_and_sample(data):
    profile = Profile.fit(data, sample_size=500, seed=3)
    col = profile.reference.column("income")
    x = data["income"]
    assert col.count == x.size
    assert col.mean == pytest.approx(x.mean(), rel=1e-12)
    assert col.variance == pytest.approx(x.var(), rel=1e-9)
    assert (col.min, col.max) == (x.min(), x.max())
    assert col.sample.size == 500
    assert np.isin(col.sample, x).all()
    assert not profile.reference.sample_complete("income")


def test_categorical_top_k_and_overflow(data):
    profile = Profile.fit(data, max_categories=100, seed=1)
    cats = profile.categories("tags")
    assert len(cats) == 100
    counts = profile.reference.column("tags").counts
    assert counts.size == 101 and counts.sum() == 10_000
    assert counts[-1] == 10_000 - counts[:-1].sum() > 0  # 20 labels share the overflow bucket
    # a label known to the reference but outside the top 100 is not "unseen"
    rare = next(f"t{i}" for i in range(120) if f"t{i}" not in cats)
    s = profile.summarize({"tags": [rare, "never-seen"]})
    col = s.column("tags")
    assert col.unseen == 1 and col.counts[-1] == 2


def test_categorical_ranking_is_by_frequency(data):
    profile = Profile.fit(data, seed=1)
    assert profile.categories("country") == ["fr", "de", "es", "it"]
    assert profile.categories("member") == [False, True]
    hist = profile.histogram("country")
    assert hist["categories"][-1] == "__other__" and sum(hist["counts"]) == 10_000
    assert list(profile.histogram("income")) == ["edges", "counts"]


def test_save_and_load_round_trip(tmp_path, data):
    profile = Profile.fit(data, seed=1)
    path = profile.save(tmp_path / "sub" / "ref.rwprofile")
    loaded = Profile.load(path)
    assert loaded.fingerprint == profile.fingerprint
    assert loaded.kinds == profile.kinds
    assert loaded.reference == profile.reference
    assert loaded.categories("country") == profile.categories("country")
    np.testing.assert_array_equal(loaded.edges("income"), profile.edges("income"))
    batch = {k: v[:100] for k, v in data.items()}
    assert loaded.summarize(batch, seed=5) == profile.summarize(batch, seed=5)
    assert Profile.from_bytes(profile.to_bytes()).fingerprint == profile.fingerprint


def test_damaged_files_give_clear_errors(tmp_path, data):
    profile = Profile.fit({"x": data["income"]}, seed=1)
    good = profile.to_bytes()
    path = tmp_path / "p.bin"

    path.write_bytes(good[:-10])
    with pytest.raises(FormatError, match=r"p\.bin: truncated profile"):
        Profile.load(path)

    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(FormatError, match="checksum mismatch"):
        Profile.load(path)

    path.write_bytes(b"hello world, this is not a profile at all")
    with pytest.raises(FormatError, match="not a raywatch profile"):
        Profile.load(path)

    path.write_bytes(profile.reference.to_bytes())
    with pytest.raises(FormatError, match="window summary, not a profile"):
        Profile.load(path)

    newer = bytearray(good)
    newer[8] = 9  # format version 9
    path.write_bytes(bytes(newer))
    with pytest.raises(FormatError, match="version 9 is not supported"):
        Profile.load(path)

    with pytest.raises(FormatError, match="cannot read"):
        Profile.load(tmp_path / "missing.bin")


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="no rows"):
        Profile.fit({"x": []})
    with pytest.raises(ValueError, match="no columns"):
        Profile.fit({})
    with pytest.raises(ValueError, match="not in the data: y"):
        Profile.fit({"x": [1.0, 2.0]}, kinds={"y": "numerical"})
    with pytest.raises(ValueError, match="kind must be one of"):
        Profile.fit({"x": [1.0, 2.0]}, kinds={"x": "text"})
    with pytest.raises(ValueError, match="'x' has no values"):
        Profile.fit({"x": [None, None]})
    with pytest.raises(ValueError, match="'x' has no finite numbers"):
        Profile.fit({"x": [np.nan, np.inf]})
    with pytest.raises(ValueError, match="'x' has no finite numbers.*wrong type"):
        Profile.fit({"x": ["a", "b"]}, kinds={"x": "numerical"})
    with pytest.raises(TypeError, match="'t'.*dtype datetime64"):
        Profile.fit({"t": np.array(["2024-01-01"], dtype="datetime64[D]")})
    with pytest.raises(TypeError, match="'d'.*values of type dict"):
        Profile.fit({"d": [{"a": 1}, {"b": 2}]})
    with pytest.raises(ValueError, match="'b' has 2 values, but other columns have 3"):
        Profile.fit({"a": [1, 2, 3], "b": [1, 2]})
    with pytest.raises(ValueError, match="1-D"):
        Profile.fit({"a": np.zeros((3, 2))})
    with pytest.raises(TypeError, match="mapping of name"):
        Profile.fit(np.zeros(3))
    with pytest.raises(ValueError, match="bins must be at least 2"):
        Profile.fit({"a": [1.0, 2.0]}, bins=1)


def test_constant_and_single_category_columns_are_handled():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile = Profile.fit({"c": np.full(100, 3.0), "one": ["a"] * 100}, seed=0)
        assert profile.edges("c").tolist() == [3.0]
        col = profile.reference.column("c")
        assert col.std == 0.0 and col.counts.tolist() == [100, 0]
        assert profile.categories("one") == ["a"]
        s = profile.summarize({"c": [3.0, 4.0], "one": ["a", "b"]})
    assert s.column("c").counts.tolist() == [1, 1]
    assert s.column("one").unseen == 1


def test_rows_input_and_repr(data):
    rows = [{"income": 1.0, "country": "fr"}, {"income": 2.0, "extra": 1}]
    profile = Profile.fit(rows, seed=0)
    assert profile.kinds == {"income": "numerical", "country": "categorical", "extra": "numerical"}
    assert profile.reference.column("country").missing == 1  # absent key reads as missing
    assert profile.reference.column("extra").missing == 1
    assert "3 columns" in repr(profile)
    with pytest.raises(KeyError, match="no column 'nope'"):
        profile.edges("nope")
    with pytest.raises(ValueError, match="has categories, not edges"):
        profile.edges("country")
    with pytest.raises(ValueError, match="has edges, not categories"):
        profile.categories("income")


def test_pandas_and_pyarrow_inputs_when_installed(data):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({k: v for k, v in data.items() if k != "tags"})
    profile = Profile.fit(df, seed=0)
    assert profile.kinds["country"] == "categorical"
    pa = pytest.importorskip("pyarrow")
    table = pa.Table.from_pandas(df)
    assert Profile.fit(table, seed=0).fingerprint == profile.fingerprint


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none())
_labels = st.one_of(st.sampled_from(["a", "b", "ü", ""]), st.integers(-3, 3), st.none())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(_values, _labels, st.one_of(st.booleans(), st.none())), min_size=1, max_size=40).filter(
        lambda rows: any(r[0] is not None and np.isfinite(r[0]) for r in rows)
        and any(r[1] is not None for r in rows)
        and any(r[2] is not None for r in rows)
    ),
    st.integers(2, 12),
)
def test_profile_bytes_round_trip_property(rows, bins):
    x, label, flag = (list(col) for col in zip(*rows))
    data = {"x": x, "label": np.array(label, dtype=object), "flag": flag}
    profile = Profile.fit(data, kinds={"label": "categorical"}, bins=bins, max_categories=3, seed=0)
    loaded = Profile.from_bytes(profile.to_bytes())
    assert loaded.fingerprint == profile.fingerprint and loaded.kinds == profile.kinds
    assert loaded.reference == profile.reference
    assert loaded.categories("label") == profile.categories("label")
    assert loaded.summarize(data, seed=1) == profile.summarize(data, seed=1)
