"""The journal's window summaries in append-only files beside the store (raywatch.aggregate.blobfiles)."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from raywatch.aggregate import StatsCore, Store
from raywatch.aggregate import blobfiles
from raywatch.aggregate.blobfiles import BlobFiles
from raywatch.aggregate.journal import StoreWriteError
from raywatch.aggregate.offline import history_from_sqlite
from raywatch.config import MonitorConfig

from rw_batches import make_batch, profile  # noqa: F401 (fixture)

T0 = 1_000_000.0


def core_on(path, profile=None):
    c = StatsCore(MonitorConfig(windows={"length": 10.0, "rolling": 3, "grace": 0.0}, actor={"sqlite_path": None}),
                  Store(str(path), busy_timeout=0.2))
    c.recover()
    if profile is not None:
        c.register_model("app/Model", {"model": "m", "version": "v1"}, profile.to_bytes(), now=T0)
    return c


def totals(c):
    return c.status()["models"]["app/Model"]["totals"]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_batch_summary_is_written_once_beside_the_store_and_replayed_from_there(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    batches = [make_batch(profile, n=30, seq=k, ts=T0 + 1) for k in range(1, 4)]
    for b in batches:
        assert c.ingest(b, now=T0 + 1) == "ok"
    rows = sqlite3.connect(str(path)).execute("SELECT blob, blob_seg, blob_off, blob_len FROM journal ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [None] * 3  # not in SQLite
    assert [r[3] for r in rows] == [len(b.summary) for b in batches]
    assert [r[2] for r in rows] == [0, len(batches[0].summary), len(batches[0].summary) + len(batches[1].summary)]
    folder = str(path) + ".blobs"
    assert mode(folder) == 0o700 and [mode(os.path.join(folder, f)) for f in os.listdir(folder)] == [0o600]
    assert c.store.journal_bytes == sum(len(b.summary) for b in batches) + sum(
        len(r[0]) for r in sqlite3.connect(str(path)).execute("SELECT data FROM journal"))
    c.store.close()
    again = core_on(path)  # no checkpoint: everything comes back from the journal and its files
    assert totals(again)["requests"] == 90 and totals(again)["rows"] == 90
    assert again.models["app/Model"].refused["summaries"] == 0
    merged = again.models["app/Model"].open[min(again.models["app/Model"].open)].summary
    assert merged.rows == 90


def test_a_trim_deletes_the_files_no_row_refers_to(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    folder = str(path) + ".blobs"
    for k in range(1, 4):
        c.ingest(make_batch(profile, n=10, seq=k, ts=T0 + 1), now=T0 + 1)
    assert c.store.blobs.numbers() == [1]
    assert c.checkpoint(now=T0 + 2)  # the journal is trimmed; file 1 goes with it once a new one is begun
    assert c.store.journal_size() == 0 and c.store.blobs.numbers() == []
    c.ingest(make_batch(profile, n=10, seq=4, ts=T0 + 3), now=T0 + 3)
    assert c.store.blobs.numbers() == [2] and os.path.exists(os.path.join(folder, "000000000002.blobs"))
    c.store.close()
    again = core_on(path)
    assert totals(again)["requests"] == 40
    # a file a row still refers to is kept; one left by a write that never committed is not
    again.ingest(make_batch(profile, n=10, seq=5, ts=T0 + 4), now=T0 + 4)
    assert again.store.blobs.numbers() == [2, 3]
    stray = again.store.blobs.path(1)
    with open(stray, "wb") as f:
        f.write(b"left by a failed transaction")
    again.store.blobs.rotate()
    assert again.store.blobs.drop_unreferenced([2, 3]) == 1 and not os.path.exists(stray)


def test_rows_an_earlier_release_wrote_with_the_summary_inline_still_replay(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    b = make_batch(profile, n=25, seq=1, ts=T0 + 1)
    c.ingest(b, now=T0 + 1)
    c.store.close()
    con = sqlite3.connect(str(path))  # as release 0.1 wrote it: the blob in the row, no blob_* columns
    con.execute("UPDATE journal SET blob = ?, blob_seg = NULL, blob_off = NULL, blob_len = NULL", (b.summary,))
    con.execute("CREATE TABLE j2 AS SELECT id, kind, model_key, data, blob, ts FROM journal")
    con.execute("DROP TABLE journal")
    con.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, model_key TEXT, "
                "data TEXT NOT NULL, blob BLOB, ts REAL NOT NULL)")
    con.execute("INSERT INTO journal SELECT * FROM j2")
    con.execute("DROP TABLE j2")
    con.commit()
    con.close()
    for f in os.listdir(str(path) + ".blobs"):
        os.unlink(os.path.join(str(path) + ".blobs", f))
    again = core_on(path)  # the columns are added; the inline summary is read
    cols = {r[1] for r in sqlite3.connect(str(path)).execute("PRAGMA table_info(journal)")}
    assert {"blob_seg", "blob_off", "blob_len"} <= cols
    assert totals(again)["rows"] == 25 and again.models["app/Model"].refused["summaries"] == 0
    assert again.store.journal_bytes == len(b.summary) + len(
        sqlite3.connect(str(path)).execute("SELECT data FROM journal").fetchone()[0])


def test_a_summary_lost_with_its_file_costs_only_the_summary(profile, tmp_path, caplog):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    for k in (1, 2):
        c.ingest(make_batch(profile, n=20, seq=k, ts=T0 + 1), now=T0 + 1)
    c.store.close()
    seg = os.path.join(str(path) + ".blobs", "000000000001.blobs")
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:  # the second summary cut short (a machine that lost power)
        f.truncate(size - 100)
    again = core_on(path)
    t = totals(again)
    assert t["requests"] == 40 and t["rows"] == 20  # both batches' counts, one summary
    assert again.models["app/Model"].refused["summaries"] == 1
    assert "its window summary is missing" in caplog.text


def test_a_failed_summary_write_fails_the_call_and_nothing_is_merged(profile, tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    b = make_batch(profile, n=15, seq=1, ts=T0 + 1)

    def full(fd, chunks):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blobfiles.os, "writev", full)
    with pytest.raises(StoreWriteError):
        c.ingest(b, now=T0 + 1)
    assert totals(c)["requests"] == 0 and c.store.journal_size() == 0
    monkeypatch.undo()
    assert c.ingest(b, now=T0 + 2) == "ok"  # the retry goes through, once
    assert totals(c)["requests"] == 15


def test_short_writes_are_continued(tmp_path, monkeypatch):
    files = BlobFiles(str(tmp_path / "b"))
    real = os.writev
    calls = []

    def short(fd, chunks):  # at most 7 bytes a call
        calls.append(len(chunks))
        data = b"".join(bytes(c) for c in chunks)[:7]
        return real(fd, [data])

    monkeypatch.setattr(blobfiles.os, "writev", short)
    blobs = [b"first summary", b"", b"second", bytes(range(40))]
    refs = files.append(blobs)
    assert [files.read(r) for r in refs] == blobs and len(calls) > 4
    monkeypatch.setattr(blobfiles, "_IOV", 2)  # more buffers than a call takes
    monkeypatch.setattr(blobfiles.os, "writev", real)
    refs = files.append([b"a", b"bb", b"ccc", b"dddd", b"eeeee"])
    assert [files.read(r) for r in refs] == [b"a", b"bb", b"ccc", b"dddd", b"eeeee"]
    files.close()


def test_a_report_of_a_copy_reads_the_original_files_and_never_deletes_them(profile, tmp_path):
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    for k in range(1, 3):
        c.ingest(make_batch(profile, n=12, seq=k, ts=T0 + 1), now=T0 + 1)
    before = sorted(os.listdir(str(path) + ".blobs"))
    h = history_from_sqlite(str(path), now=T0 + 5)
    assert sum(h["models"]["app/Model"]["features"]["age"]["current"]["counts"]) == 24  # the summaries, read
    assert sorted(os.listdir(str(path) + ".blobs")) == before
    ro = BlobFiles(str(path) + ".blobs", read_only=True)
    with pytest.raises(OSError, match="read only"):
        ro.append([b"x"])
    assert ro.drop_unreferenced([]) == 0 and sorted(os.listdir(str(path) + ".blobs")) == before


def test_a_forgotten_models_summaries_are_zeroed_in_the_files_other_rows_keep(profile, tmp_path):
    """``raywatch reset --model``: the model's summaries leave the disk at once, not when the
    files they share with other models' rows are deleted at a later trim."""
    path = tmp_path / "s.sqlite"
    c = core_on(path, profile)
    c.register_model("app/Other", {"model": "m", "version": "v1"}, profile.to_bytes(), now=T0)
    mine = [make_batch(profile, n=30, seq=k, ts=T0 + 1, seed=k) for k in (1, 2)]
    theirs = [make_batch(profile, n=30, seq=k, ts=T0 + 1, deployment="Other", seed=10 + k) for k in (1, 2)]
    for b in (mine[0], theirs[0], mine[1], theirs[1]):  # interleaved in one file
        assert c.ingest(b, now=T0 + 1) == "ok"
    folder = str(path) + ".blobs"
    (name,) = os.listdir(folder)
    before = open(os.path.join(folder, name), "rb").read()
    assert all(b.summary in before for b in mine + theirs)
    deleted = c.store.forget_model("app/Model")
    assert deleted["journal"] == 2
    after = open(os.path.join(folder, name), "rb").read()  # kept: the other model's rows refer to it
    assert len(after) == len(before)
    assert not any(b.summary in after for b in mine) and all(b.summary in after for b in theirs)
    assert after.count(b"\0" * len(mine[0].summary)) >= 1
    c.store.close()
    again = core_on(path)  # the other model's batches still replay whole
    st = again.status()["models"]
    assert "app/Model" not in st and st["app/Other"]["totals"]["requests"] == 60
    assert again.models["app/Other"].refused["summaries"] == 0
