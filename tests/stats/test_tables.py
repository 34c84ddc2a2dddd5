"""Reading reference data from CSV, TSV, NPZ and Parquet files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raywatch.stats.profile import Profile
from raywatch.stats.tables import read_table


def test_csv_columns_are_typed_per_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("amount,plan,card_present,flag\n1.5,pro,true,true\n,free,false,\n3,,TRUE,false\n")
    cols = read_table(path)
    assert list(cols) == ["amount", "plan", "card_present", "flag"]
    assert cols["amount"].dtype == np.float64 and cols["amount"][0] == 1.5 and math.isnan(cols["amount"][1])
    assert cols["plan"].tolist() == ["pro", "free", None]
    assert cols["card_present"].dtype == bool and cols["card_present"].tolist() == [True, False, True]
    assert cols["flag"].tolist() == [True, None, False]  # a missing boolean stays missing
    assert Profile.fit(cols).kinds == {"amount": "numerical", "plan": "categorical", "card_present": "boolean",
                                       "flag": "boolean"}


def test_tsv_and_format_override(tmp_path):
    path = tmp_path / "t.data"
    path.write_text("a\tb\n1\tx\n2\ty\n")
    cols = read_table(path, "tsv")
    assert cols["a"].tolist() == [1.0, 2.0] and cols["b"].tolist() == ["x", "y"]


def test_npz_one_array_per_column_or_one_matrix(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cols.npz", age=rng.normal(size=10), plan=np.array(["a", "b"] * 5))
    assert sorted(read_table(tmp_path / "cols.npz")) == ["age", "plan"]
    np.savez(tmp_path / "mat.npz", x=rng.normal(size=(10, 3)))
    mat = read_table(tmp_path / "mat.npz")
    assert list(mat) == ["x_0", "x_1", "x_2"] and mat["x_1"].shape == (10,)
    np.savez(tmp_path / "bad.npz", x=rng.normal(size=(10, 3)), y=rng.normal(size=10))
    with pytest.raises(ValueError, match=r"arrays \['x'\] are not 1-D"):
        read_table(tmp_path / "bad.npz")


def test_parquet_is_read_as_a_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1.0, 2.0], "b": ["x", "y"]}), tmp_path / "t.parquet")
    table = read_table(tmp_path / "t.parquet")
    assert table.column_names == ["a", "b"] and table.num_rows == 2


def test_unreadable_tables_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match=f"{bad}: line 3: 1 fields, header has 2"):
        read_table(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty CSV file"):
        read_table(empty)
    with pytest.raises(ValueError, match="unknown format 'json'"):
        read_table(tmp_path / "x.json")


def test_a_column_forced_categorical_keeps_its_text(tmp_path):
    """``--kind zip=categorical``: the labels are the cells as written ("01234", "75001"),
    not the numbers they look like, so production strings match them exactly."""
    path = tmp_path / "t.csv"
    path.write_text("zip,amount\n75001,1.5\n01234,2\n,3\n")
    cols = read_table(path, kinds={"zip": "categorical", "amount": "numerical"})
    assert cols["zip"].tolist() == ["75001", "01234", None] and cols["amount"].tolist() == [1.5, 2.0, 3.0]
    profile = Profile.fit(cols, {"zip": "categorical"}, seed=0)
    assert sorted(profile.categories("zip")) == ["01234", "75001"]
    z = profile.summarize([{"zip": "01234", "amount": 1.0}, {"zip": "75001", "amount": 1.0}]).column("zip")
    assert (z.wrong_type, z.unseen, z.count) == (0, 0, 2)
    with pytest.raises(ValueError, match="kinds names columns that are not in .*: nope"):
        read_table(path, kinds={"nope": "categorical"})


def test_integers_written_with_a_leading_zero_are_codes_not_quantities(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("zip,n,x\n01234,0,0.5\n75001,10,-0.25\n")
    cols = read_table(path)
    assert cols["zip"].tolist() == ["01234", "75001"]  # a zip code keeps its zero
    assert cols["n"].tolist() == [0.0, 10.0] and cols["x"].tolist() == [0.5, -0.25]  # "0" and "0.5" are numbers
    assert Profile.fit(cols).kinds["zip"] == "categorical"
