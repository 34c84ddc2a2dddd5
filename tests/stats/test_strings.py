"""The packed tally of short labels equals count_strings' comparisons."""

import numpy as np
import pytest

from raywatch.stats.columns import count_strings, encode_categorical
from raywatch.stats.strings import short_string_codes, tally_short_strings


def _lookup(labels):
    return {label: code for code, label in enumerate(labels)}


CASES = [
    (["red", "green", "blue"], ["red", "green", "blue", "teal", ""]),
    (["a", "ab", "abc", ""], ["a", "ab", "abc", "abcd", "b", ""]),
    (["café", "naïve", "x"], ["café", "naive", "naïve", "x", "xx"]),  # Latin-1 code points
    (["12345678", "1234567", "z"], ["12345678", "1234567", "1234567 ", "z"]),  # 8 characters
    (["toolongforapack", "a"], ["a", "b"]),  # a label longer than every value matches none
    (["Δ", "a"], ["a", "b", "c"]),  # a label beyond Latin-1 matches none here either
]


@pytest.mark.parametrize("known,values", CASES)
def test_tally_equals_count_strings(known, values):
    rng = np.random.default_rng(len(values))
    arr = np.array(values)[rng.integers(0, len(values), 5000)]
    lookup = _lookup(known)
    lookup[7] = len(known)  # a non-string label is not a string match
    unseen = len(known) + 2
    fast = tally_short_strings(arr, lookup, {"str"}, unseen)
    assert fast is not None
    assert fast.tolist() == count_strings(arr, lookup, {"str"}, unseen).tolist()


@pytest.mark.parametrize("arr,families", [
    (np.array(["Δelta", "beta"]), {"str"}),  # a code point ≥ 256: the comparisons
    (np.array(["a much longer label"]), {"str"}),  # more than 8 characters
    (np.array([1, 2, 3]), {"number"}),  # not strings
    (np.array(["a", "b"]), {"number"}),  # the reference had no strings
    (np.array(["75001", "b"]), {"str", "number"}),  # numbers among the labels: "75001" is 75001
    (np.array(["a", None], dtype=object), {"str"}),  # object arrays: encode_categorical
    (np.array(["75001", "b"]), {"str", "number"}),  # numbers compare by normalised text
])
def test_falls_back_where_it_does_not_apply(arr, families):
    assert tally_short_strings(arr, {"a": 0}, families, 2) is None


def test_a_strided_view_is_tallied_too():
    arr = np.array(["x", "y", "z", "x"] * 1000)[::2]
    assert tally_short_strings(arr, {"x": 0, "z": 1}, {"str"}, 3).tolist() == [0, 0, 0, 1000, 1000, 0, 0]


@pytest.mark.parametrize("known,values", CASES + [
    (["visa", "amex", "mobile"], ["visa", "amex", "mobile", "cash", "vis"]),
    (["a", "b", ""], ["a", "b", "c", "", "\xff"]),  # one code point: the lookup table
    (["fr", "d", "ÿÿ"], ["fr", "de", "d", "", "ÿÿ", "ÿ"]),  # two code points: the lookup table
])
def test_codes_equal_encode_categorical(known, values):
    rng = np.random.default_rng(len(values))
    arr = np.array(values)[rng.integers(0, len(values), 5000)]
    lookup = _lookup(known)
    unseen = len(known) + 2
    fast = short_string_codes(arr, lookup, {"str"}, unseen)
    assert fast is not None
    assert fast.tolist() == encode_categorical(arr, lookup, {"str"}, unseen).tolist()


@pytest.mark.parametrize("arr,families", [
    (np.array(["Δelta", "beta"]), {"str"}),
    (np.array(["a much longer label"]), {"str"}),
    (np.array([1, 2, 3]), {"number"}),
    (np.array(["75001", "b"]), {"str", "number"}),
])
def test_codes_fall_back_where_the_tally_does(arr, families):
    assert short_string_codes(arr, {"a": 0}, families, 2) is None
