"""The stats actor's SQLite file: owner-only from creation, checked when opened, repaired.

Every test uses a real SQLite file (issue 11, "persistence that repairs itself"):

* owner-only modes of the folder, the database, its WAL and SHM, of a file an older
  raywatch left readable, and of ``~/.raywatch`` — test_modes_*
* a damaged header, a damaged page, a truncated file, an empty (zero-length) file: moved
  aside as ``<name>.corrupt-<UTC time>`` (WAL and SHM with it), a fresh store, what can be
  read salvaged table by table, the event counted — test_corrupt_*, test_empty_*
* a check that runs out of time is counted and the file used — test_integrity_check_is_bounded
* a locked file is not "corrupt" — test_locked_file_is_not_moved_aside
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest

from raywatch.aggregate.journal import JournalRow
from raywatch.aggregate.store import Store


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def fill(store: Store, windows: int = 300, journal: int = 50) -> None:
    store.save_model("app/M", {"app": "app", "deployment": "M"}, None, None, 1.0)
    store.save_model("app/N", {"app": "app", "deployment": "N"}, None, None, 1.0)
    jid = store.append_journal([JournalRow("feedback", None, json.dumps({"i": i, "pad": "x" * 200}), None, 1.0)
                                for i in range(journal)])
    store.checkpoint({"app/M": ("model", '{"format":"raywatch.model-state"}')}, journal_id=jid - 10, now=2.0)
    for i in range(windows):
        store.insert_window("app/M", float(i), float(i + 1), {"requests": i, "pad": "w" * 300})


def corrupt_names(folder, name="s.sqlite", siblings=False):
    """The moved-aside database files (with their ``-wal`` / ``-shm`` when ``siblings``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(name + ".corrupt-")
                  and (siblings or not p.name.endswith(("-wal", "-shm"))))


# ---------------------------------------------------------------- modes


def test_modes_of_folder_database_wal_and_shm(tmp_path, loose_umask):
    path = tmp_path / "state" / "deeper" / "s.sqlite"
    s = Store(str(path))
    s.append_journal([JournalRow("feedback", None, "{}", None, 1.0)])
    for p in (path, str(path) + "-wal", str(path) + "-shm"):
        assert os.path.exists(p) and mode(p) == 0o600, (p, oct(mode(p)))
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    s.close()


def test_modes_of_a_file_an_older_raywatch_left_readable(tmp_path, loose_umask):
    path = tmp_path / "s.sqlite"
    old = sqlite3.connect(str(path))  # made with the default umask: 0644, and its WAL / SHM too
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE x (v)")
    old.execute("INSERT INTO x VALUES (1)")
    old.commit()
    for p in (path, str(path) + "-wal", str(path) + "-shm"):
        os.chmod(p, 0o644)
    s = Store(str(path))
    for p in (path, str(path) + "-wal", str(path) + "-shm"):
        assert mode(p) == 0o600, (p, oct(mode(p)))
    s.close()
    old.close()


def test_modes_of_home_raywatch(tmp_path, monkeypatch, loose_umask):
    from raywatch.actor.actor import sqlite_path_for
    from raywatch.config import MonitorConfig

    monkeypatch.setenv("HOME", str(tmp_path))
    path = sqlite_path_for(MonitorConfig(), 0)
    assert path == str(tmp_path / ".raywatch" / "raywatch-stats.sqlite")
    Store(path).close()
    assert mode(tmp_path / ".raywatch") == 0o700 and mode(path) == 0o600
    # a ~/.raywatch an older raywatch created with the default mode is tightened
    os.chmod(tmp_path / ".raywatch", 0o755)
    Store(path).close()
    assert mode(tmp_path / ".raywatch") == 0o700


def test_a_folder_raywatch_did_not_create_is_left_as_it_is(tmp_path, loose_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    Store(str(shared / "s.sqlite")).close()
    assert mode(shared) == 0o755 and mode(shared / "s.sqlite") == 0o600


# ---------------------------------------------------------------- corruption


def test_corrupt_header_is_moved_aside_and_a_fresh_store_starts(tmp_path):
    path = tmp_path / "s.sqlite"
    s = Store(str(path))
    fill(s)
    s.close()
    with open(path, "r+b") as fh:
        fh.write(b"this is not sqlite" * 4)
    s = Store(str(path))
    moved = corrupt_names(tmp_path)
    assert len(moved) == 1 and moved[0].startswith("s.sqlite.corrupt-") and moved[0].endswith("Z")
    assert mode(tmp_path / moved[0]) == 0o600
    assert [e["kind"] for e in s.repairs] == ["corrupt"]
    ev = s.repairs[0]
    assert ev["moved_to"] == str(tmp_path / moved[0]) and "not a database" in ev["detail"]
    assert s.counts() == {"models": 0, "state": 0, "journal": 0, "windows": 0, "alerts": 0, "audit": 0}
    s.save_model("app/M", {}, None, None, 3.0)  # the fresh store works
    assert mode(path) == 0o600
    s.close()
    again = Store(str(path))  # and is not "repaired" again
    assert again.repairs == [] and again.counts()["models"] == 1


def test_corrupt_page_salvages_table_by_table(tmp_path):
    path = tmp_path / "s.sqlite"
    s = Store(str(path))
    fill(s, windows=2000)
    s.close()
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    # a page in the middle of the windows table's leaves
    pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name='windows' AND pagetype='leaf'")] \
        if _has_dbstat(conn) else []
    conn.close()
    victim = pages[len(pages) // 2] if pages else os.path.getsize(path) // page - 3
    with open(path, "r+b") as fh:
        fh.seek((victim - 1) * page)
        fh.write(os.urandom(page))
    s = Store(str(path))
    assert [e["kind"] for e in s.repairs][:1] == ["corrupt"]
    assert len(corrupt_names(tmp_path)) == 1
    counts = s.counts()
    # the undamaged tables came across whole, the damaged one lost only its damaged rows
    assert counts["models"] == 2 and counts["state"] == 1 and counts["journal"] == 10
    assert 1500 <= counts["windows"] < 2000
    assert s.checkpoint_journal_id() == 40
    salvage = s.repairs[0]["salvaged"]
    assert salvage["windows"]["rows"] == counts["windows"] and salvage["windows"]["damaged"] >= 1
    assert salvage["models"] == {"rows": 2, "damaged": 0}
    s.close()


def _garble(path, table: str, column: str, rowids) -> None:
    """Bytes of ``column`` in some rows overwritten as a failing disk does (the page itself
    still reads): the JSON in them no longer parses."""
    conn = sqlite3.connect(str(path))
    conn.executemany(f"UPDATE {table} SET {column} = substr({column}, 1, 20) || 'ZZZZZZZZ' WHERE rowid = ?",
                     [(r,) for r in rowids])
    conn.commit()
    conn.close()


def test_salvage_leaves_behind_rows_whose_json_no_longer_parses(tmp_path):
    """Found by the fault campaign (corrupt_store): a row read from a damaged page came
    across with its JSON garbled, and every later history call raised JSONDecodeError."""
    from raywatch.aggregate.store import TABLES

    src_path = tmp_path / "moved.sqlite"
    s = Store(str(src_path))
    fill(s, windows=100)
    s.insert_alert(5.0, "app/M", {"alertname": "A", "state": "firing", "labels": {"a": "1"}, "annotations": {}})
    s.close()
    _garble(src_path, "windows", "result", [3, 50])
    _garble(src_path, "journal", "data", [45])  # the journal after the checkpoint: ids 41-50
    _garble(src_path, "alerts", "labels", [1])
    fresh = Store(str(tmp_path / "fresh.sqlite"))
    src = sqlite3.connect(str(src_path))
    try:
        got = {t: Store._salvage_table(src, fresh._conn, t, cols) for t, cols in TABLES.items() if t != "meta"}
    finally:
        src.close()
    assert got["windows"] == {"rows": 98, "damaged": 2} and got["journal"] == {"rows": 9, "damaged": 1}
    assert got["alerts"] == {"rows": 0, "damaged": 1} and got["models"] == {"rows": 2, "damaged": 0}
    assert len(fresh.windows()) == 98 and fresh.alerts() == []
    fresh.close()


def test_history_skips_a_row_damaged_in_place(tmp_path):
    """Content damaged without breaking a page passes the integrity check: the history
    readers skip the rows that no longer parse instead of failing every call."""
    path = tmp_path / "s.sqlite"
    s = Store(str(path))
    fill(s, windows=20)
    s.insert_alert(5.0, "app/M", {"alertname": "A", "state": "firing", "labels": {"a": "1"}, "annotations": {}})
    s.insert_alert(6.0, "app/M", {"alertname": "A", "state": "resolved", "labels": {"a": "1"}, "annotations": {}})
    s.close()
    _garble(path, "windows", "result", [7])
    _garble(path, "alerts", "annotations", [1])
    s = Store(str(path))
    assert s.repairs == []
    assert [w["requests"] for w in s.windows()] == [i for i in range(20) if i != 6]
    assert [a["state"] for a in s.alerts()] == ["resolved"]
    s.close()


def _has_dbstat(conn) -> bool:
    try:
        conn.execute("SELECT 1 FROM dbstat LIMIT 1").fetchall()
        return True
    except sqlite3.Error:
        return False


def test_corrupt_truncated_file(tmp_path):
    path = tmp_path / "s.sqlite"
    s = Store(str(path))
    fill(s, windows=2000)
    s.close()
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(size // 2 + 100)
    s = Store(str(path))
    assert [e["kind"] for e in s.repairs] == ["corrupt"] and len(corrupt_names(tmp_path)) == 1
    assert s.counts()["models"] == 2  # the early pages were readable
    s.close()


@pytest.mark.parametrize("page_size", [4096, 16384])
def test_salvage_of_a_truncated_file_ends(tmp_path, page_size):
    # truncated here, the windows table's tree answers "rowid > 832" with rows up to 832 again
    # and again: the salvage looped for ever (the actor never started); every step must move on
    import signal

    path = tmp_path / "s.sqlite"
    c = sqlite3.connect(path)
    c.execute(f"PRAGMA page_size={page_size}")
    c.execute("VACUUM")
    c.close()
    s = Store(str(path))
    fill(s, windows=3000)
    s.close()
    size = os.path.getsize(path)

    def hung(*_):
        raise TimeoutError("the salvage of a truncated file did not end")

    old = signal.signal(signal.SIGALRM, hung)
    try:
        for frac in (0.6, 0.7):
            part = tmp_path / f"cut{int(frac * 10)}"
            part.mkdir()
            data = path.read_bytes()[: int(size * frac) + 100]
            (part / "s.sqlite").write_bytes(data)
            signal.alarm(30)
            s = Store(str(part / "s.sqlite"))
            signal.alarm(0)
            (ev,) = s.repairs
            assert ev["kind"] == "corrupt" and ev["salvaged"]["windows"]["rows"] > 0, ev
            assert s.counts()["models"] == 2
            s.close()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_wal_and_shm_move_aside_with_their_database(tmp_path):
    path = tmp_path / "s.sqlite"
    s = Store(str(path))
    fill(s)
    keep = sqlite3.connect(str(path))  # keeps the WAL and SHM from being removed at close
    keep.execute("SELECT 1").fetchall()
    s.close()
    keep.execute("BEGIN")
    keep.execute("INSERT INTO meta VALUES ('x', 'y')")
    keep.commit()
    os.close(os.open(str(path), os.O_WRONLY | os.O_TRUNC))  # then the database itself is emptied
    assert os.path.exists(str(path) + "-wal")
    s = Store(str(path))
    moved = corrupt_names(tmp_path, siblings=True)
    assert {m.rsplit("Z", 1)[1] for m in moved} == {"", "-wal", "-shm"}, moved
    assert all(mode(tmp_path / m) == 0o600 for m in moved)
    s.close()
    keep.close()


def test_empty_file_is_an_event_not_a_silent_fresh_start(tmp_path):
    path = tmp_path / "s.sqlite"
    s = Store(str(path))
    fill(s)
    s.close()
    os.truncate(path, 0)
    s = Store(str(path))
    assert [e["kind"] for e in s.repairs] == ["empty"]
    assert len(corrupt_names(tmp_path)) == 1 and s.counts()["models"] == 0
    s.close()


def test_a_new_file_is_no_event(tmp_path):
    s = Store(str(tmp_path / "s.sqlite"))
    assert s.repairs == [] and s.check == "new"
    s.close()
    s = Store(str(tmp_path / "s.sqlite"))
    assert s.repairs == [] and s.check == "ok"
    s.close()


def test_integrity_check_is_bounded(tmp_path):
    path = tmp_path / "s.sqlite"
    s = Store(str(path))
    fill(s, windows=3000)
    s.close()
    s = Store(str(path), integrity_check="full", check_timeout=1e-6)
    assert s.check == "timeout" and [e["kind"] for e in s.repairs] == ["check_timeout"]
    assert s.counts()["windows"] == 3000 and corrupt_names(tmp_path, siblings=True) == []
    s.close()
    s = Store(str(path), integrity_check="off")
    assert s.check == "skipped" and s.repairs == []
    s.close()


def test_locked_file_is_not_moved_aside(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(str(path)).close()
    lock = sqlite3.connect(str(path), isolation_level=None)
    lock.execute("PRAGMA journal_mode=DELETE")  # a rollback-journal writer holds an exclusive lock
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError):
            Store(str(path), busy_timeout=0.2)
        assert corrupt_names(tmp_path, siblings=True) == []
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def test_trimming_the_journal_does_not_write_the_freed_pages_again(tmp_path):
    """A checkpoint drops the journal entries it includes. Their pages are freed, not zeroed
    page by page into the WAL (Debian's SQLite defaults to ``secure_delete=ON``, which wrote as
    much WAL for the trim as the journal itself)."""
    store = Store(str(tmp_path / "s.sqlite"))
    try:
        blob = os.urandom(35_000)  # a 1,000-row batch's window summary is about this size
        last = 0
        for _ in range(20):
            last = store.append_journal([JournalRow("batch", "app/m", "{}", blob, 1.0)] * 10)
        deleted = 200 * len(blob)
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL from here holds the trim alone
        wal = str(tmp_path / "s.sqlite-wal")
        assert os.path.getsize(wal) == 0
        assert store.checkpoint({}, last, 2.0) == last
        assert store.journal_size() == 0
        assert os.path.getsize(wal) < deleted / 20, (os.path.getsize(wal), deleted)
    finally:
        store.close()
