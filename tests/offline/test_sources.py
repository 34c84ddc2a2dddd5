"""The pieces a source is cut into for Ray's tasks, and reading them (no Ray here).

* every row group of a large Parquet file is in exactly one piece, in order, and reading the
  pieces gives the record batches :meth:`Source.batches` gives — test_large_parquet_file_is_cut_by_row_groups
* small files, CSV files and a Parquet file of one row group stay whole — test_small_and_csv_files_stay_whole
* a task's function over pieces merges its parts into one, the same as merging them here —
  test_pieces_task_merges_its_parts
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raywatch.offline.engine import _Pieces
from raywatch.offline.merge import tree_merge
from raywatch.offline.sources import resolve


def _table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n), "i": np.arange(n)})


def test_large_parquet_file_is_cut_by_row_groups(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(_table(10_000), path, row_group_size=1_000)  # ten row groups
    src = resolve(str(path))
    assert src.sizes == [os.path.getsize(path)]
    group_bytes = pq.ParquetFile(path).metadata.row_group(0).total_byte_size
    pieces = src.pieces(split_bytes=3 * group_bytes)
    assert len(pieces) == 4  # 3 + 3 + 3 + 1 row groups
    assert [g for _, groups in pieces for g in groups] == list(range(10))
    got = pa.Table.from_batches([b for p in pieces for b in src.read_piece(p, ["x", "i"], batch_rows=700)])
    want = pa.Table.from_batches(list(src.batches(["x", "i"])))
    assert got.column_names == ["x", "i"]
    assert got.equals(want)
    assert src.pieces() == [(str(path), None)]  # under the default size: one piece


def test_small_and_csv_files_stay_whole(tmp_path):
    for i in range(3):
        pq.write_table(_table(50, i), tmp_path / f"part-{i}.parquet")
        pacsv.write_csv(_table(50, i), tmp_path / f"part-{i}.csv")
    pq.write_table(_table(5_000), tmp_path / "one-group.pq", row_group_size=10_000)
    parquet, csv = resolve(str(tmp_path / "*.parquet")), resolve(str(tmp_path / "*.csv"))
    assert parquet.pieces() == [(f, None) for f in parquet.files]
    assert parquet.pieces(split_bytes=1) == [(f, (0,)) for f in parquet.files]  # one row group each
    assert csv.pieces(split_bytes=1) == [(f, None) for f in csv.files]  # CSV files are never cut
    one = resolve(str(tmp_path / "one-group.pq"))
    assert one.pieces(split_bytes=1) == [(one.files[0], (0,))]  # one row group: one piece
    got = [b for p in csv.pieces(split_bytes=1) for b in csv.read_piece(p)]
    assert sum(b.num_rows for b in got) == 150
    assert pa.Table.from_batches(got).equals(pa.Table.from_batches(list(csv.batches())))


def test_pieces_task_merges_its_parts(tmp_path):
    for i in range(4):
        pq.write_table(_table(300 + i, i), tmp_path / f"part-{i}.parquet")
    src = resolve(str(tmp_path))
    pieces = src.pieces()
    rows = lambda t: [t.num_rows]  # noqa: E731  (a part: the rows of each batch)
    join = lambda a, b: a + b  # noqa: E731
    merged = _Pieces(rows, join, src, pieces, ["x"], 100)({"piece": np.arange(4)})["part"]
    assert merged.shape == (1,) and sum(merged[0]) == 1206 and len(merged[0]) == 3 + 4 + 4 + 4
    each = _Pieces(rows, None, src, pieces, ["x"], 100)({"piece": np.array([2, 3])})["part"]
    assert [p for p in each] == [[100], [100], [100], [2], [100], [100], [100], [3]]
    assert sorted(tree_merge(list(each), join)) == sorted(b for p in each for b in p)
    assert _Pieces(rows, join, src, pieces, ["x"], 100)({"piece": np.arange(0)})["part"].shape == (0,)
