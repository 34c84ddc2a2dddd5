"""Value typing of production columns: a value that cannot be summarized is wrong type for
its own column, and categories compare by their normalised text ("75001" and 75001 agree)."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from raywatch.stats.columns import encode_numerical, wrong_type_names
from raywatch.stats.profile import Profile

HUGE = json.loads("1" + "0" * 400)  # a 400-digit JSON integer: no float holds it


def test_an_int_too_large_for_a_float_is_wrong_type_not_an_error():
    x, wrong = encode_numerical(np.array([1, HUGE, 3], dtype=object))
    assert wrong == 1 and x.tolist() == [1.0, 3.0]
    x, wrong = encode_numerical(np.array([Fraction(HUGE), 2.5, None], dtype=object))
    assert wrong == 1 and x.tolist()[0] == 2.5


def test_one_huge_value_costs_only_itself_in_a_summary():
    profile = Profile.fit({"a": np.arange(100.0), "c": ["x", "y"] * 50}, seed=0)
    rows = [{"a": float(i), "c": "x"} for i in range(999)] + [{"a": HUGE, "c": "y"}]
    s = profile.summarize(rows, seed=1)
    a = s.column("a")
    assert s.rows == 1000 and a.wrong_type == 1 and a.count == 999
    assert s.column("c").count == 1000


def test_wrong_type_names_are_the_observed_types_bounded():
    profile = Profile.fit({"a": np.arange(100.0), "c": ["x", "y"] * 50, "b": [True, False] * 50}, seed=0)
    spec = profile.specs
    arr = np.array(["1.5", 2.0, None, b"x", HUGE, [1], "3"], dtype=object)
    assert wrong_type_names(arr, spec["a"]) == ["str", "bytes", "int (too large for float)"]
    assert wrong_type_names(arr, spec["a"], limit=2) == ["str", "bytes"]
    assert wrong_type_names(np.array(["a", "b"]), spec["a"]) == ["str"]
    assert wrong_type_names(np.arange(3.0), spec["a"]) == []
    assert wrong_type_names(np.array([True, 2, "yes", None], dtype=object), spec["b"]) == ["int", "str"]
    assert wrong_type_names(np.array([1.5, 2.5]), spec["c"]) == ["float"]
    assert wrong_type_names(np.array(["x", {"k": 1}], dtype=object), spec["c"]) == ["dict"]


# ------------------------------------------------ categories compare by normalised text


def _built_with_the_cli(tmp_path, csv_text, *args):
    from click.testing import CliRunner

    from raywatch.cli import main

    data = tmp_path / "ref.csv"
    data.write_text(csv_text)
    out = tmp_path / "ref.profile"
    result = CliRunner().invoke(main, ["profile", "build", str(data), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    return Profile.load(out)


def test_a_zip_column_forced_categorical_accepts_json_strings_and_numbers(tmp_path):
    """``raywatch profile build --kind zip=categorical`` on a CSV of zip codes: production
    JSON sends ``"75001"`` (or 75001), and both count as the label, not as wrong type."""
    rows = "\n".join(f"{z},{a}" for z, a in [(75001, 1.0), (75002, 2.0), (69001, 3.0)] * 20)
    profile = _built_with_the_cli(tmp_path, "zip,amount\n" + rows + "\n", "--kind", "zip=categorical")
    assert profile.kinds["zip"] == "categorical"
    prod = [{"zip": "75001", "amount": 1.0}, {"zip": 75002, "amount": 1.0}, {"zip": "69001", "amount": 2.0},
            {"zip": "13001", "amount": 1.0}, {"zip": 13002, "amount": 1.0}, {"zip": "paris", "amount": 1.0}]
    z = profile.summarize(prod, seed=0).column("zip")
    assert (z.wrong_type, z.unseen, z.missing) == (1, 2, 0)  # only "paris" is not a zip code
    assert z.counts[:3].sum() == 3
    # columnar (numpy string array) input takes the vectorized path: same answer
    cols = {"zip": np.array(["75001", "75002", "13001", "paris"]), "amount": np.ones(4)}
    z = profile.summarize(cols, seed=0).column("zip")
    assert (z.wrong_type, z.unseen, z.count) == (1, 1, 3)


def test_text_labels_accept_numbers_by_their_text():
    profile = Profile.fit({"zip": ["75001", "75002", "01234"] * 10, "plan": ["free", "pro", "team"] * 10},
                          {"zip": "categorical"}, seed=0)
    s = profile.summarize({"zip": np.array([75001, 75002, 99999, 1234.0, 75001.0], dtype=object),
                           "plan": np.array([3, "pro", 4.5, "x", None], dtype=object)}, seed=0)
    z, p = s.column("zip"), s.column("plan")
    assert (z.wrong_type, z.unseen, z.count) == (0, 2, 5)  # 1234 is not "01234": unseen
    assert (p.wrong_type, p.unseen, p.missing, p.count) == (2, 1, 1, 2)  # numbers are no plan names
    ints = Profile.fit({"zip": np.array([75001, 75002] * 10, dtype=object)}, {"zip": "categorical"}, seed=0)
    z = ints.summarize({"zip": np.array(["75001", "075002", "7.5e4", "x", True], dtype=object)}).column("zip")
    assert (z.wrong_type, z.unseen, z.count) == (2, 1, 3)  # "x" and True are wrong, 75000 unseen
    boolean = Profile.fit({"b": [True, False] * 10}, seed=0)
    b = boolean.summarize({"b": np.array(["1", "true", 1, 0], dtype=object)}).column("b")
    assert (b.wrong_type, b.count) == (2, 2)  # text is no boolean, as before


def test_mixed_family_labels_match_across_families():
    profile = Profile.fit({"code": np.array(["A1", 75001, "B2", 75002] * 5, dtype=object)}, {"code": "categorical"}, seed=0)
    c = profile.summarize({"code": np.array(["75001", 75002.0, "A1", "Z9"], dtype=object)}).column("code")
    assert (c.wrong_type, c.unseen, c.count) == (0, 1, 4)
    c = profile.summarize({"code": np.array(["75001", "A1", "Z9"])}).column("code")  # numpy strings
    assert (c.wrong_type, c.unseen, c.count) == (0, 1, 3)
