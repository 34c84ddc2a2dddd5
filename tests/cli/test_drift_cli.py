"""``raywatch profile build`` over directories, globs and URIs, and ``raywatch drift``, in this
process (their ``--ray`` runs are in tests/offline/test_offline_ray.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from raywatch.cli import main
from raywatch.stats.profile import Profile


def _frame(n: int, seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "amount": rng.lognormal(3, 1, n) + shift * 60.0,
        "merchant": rng.choice(["grocery", "travel", "online"], n),
        "card_present": rng.random(n) < 0.7,
    })


@pytest.fixture
def data(tmp_path):
    out = {}
    for name, seed, shift in (("ref", 0, 0.0), ("same", 1, 0.0), ("drifted", 2, 1.0)):
        for fmt in ("parquet", "csv"):
            d = tmp_path / name / fmt
            d.mkdir(parents=True)
            for i in range(3):
                t = _frame(2_000, seed * 10 + i, shift)
                path = d / f"part-{i}.{fmt}"
                pq.write_table(t, path) if fmt == "parquet" else pacsv.write_csv(t, path)
            (d / "_SUCCESS").write_text("")  # markers beside the data are skipped
            out[(name, fmt)] = d
    return out


def test_drift_help():
    res = CliRunner().invoke(main, ["drift", "--help"])
    assert res.exit_code == 0 and "REFERENCE CURRENT" in res.output and "--ray" in res.output
    assert "  drift " in CliRunner().invoke(main, ["--help"]).output


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_profile_build_of_a_directory_is_profile_fit_of_its_rows(data, tmp_path, fmt):
    out = tmp_path / "ref.profile"
    res = CliRunner().invoke(main, ["profile", "build", str(data[("ref", fmt)]), "-o", str(out), "--bins", "20"])
    assert res.exit_code == 0, res.output
    assert f"profile written to {out}: 6,000 rows, 3 columns" in res.output
    assert f"(3 {fmt} files," in res.output and "fitted in this process" in res.output
    files = sorted(p for p in data[("ref", fmt)].iterdir() if p.suffix == f".{fmt}")
    whole = pa.concat_tables([pq.read_table(p) if fmt == "parquet" else pacsv.read_csv(p) for p in files])
    want = Profile.fit(whole, bins=20, seed=0)
    got = Profile.load(out)
    assert got.fingerprint == want.fingerprint and got.kinds == want.kinds
    assert np.array_equal(got.reference.counts, want.reference.counts)
    # a quoted glob and a file:// URI name the same files
    for given in (str(data[("ref", fmt)] / f"part-*.{fmt}"), "file://" + str(data[("ref", fmt)])):
        res = CliRunner().invoke(main, ["profile", "build", given, "-o", str(tmp_path / "again.profile"), "--bins", "20"])
        assert res.exit_code == 0, res.output
        assert Profile.load(tmp_path / "again.profile").fingerprint == want.fingerprint


def test_profile_build_of_a_directory_needs_an_output_and_names_bad_input(data, tmp_path):
    res = CliRunner().invoke(main, ["profile", "build", str(data[("ref", "parquet")])])
    assert res.exit_code == 1 and "give the profile file to write (-o FILE)" in res.output
    res = CliRunner().invoke(main, ["profile", "build", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.profile")])
    assert res.exit_code == 1 and "no such file or directory" in res.output
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pq.write_table(_frame(10, 0), mixed / "a.parquet")
    pacsv.write_csv(_frame(10, 0), mixed / "b.csv")
    res = CliRunner().invoke(main, ["profile", "build", str(mixed), "-o", str(tmp_path / "x.profile")])
    assert res.exit_code == 1 and "files of several formats (csv, parquet)" in res.output
    res = CliRunner().invoke(main, ["profile", "build", str(mixed), "-o", str(tmp_path / "x.profile"), "--columns", "nope",
                                    "--format", "parquet"])
    assert res.exit_code == 1 and "--columns: nope not in" in res.output


def test_drift_against_a_profile_and_against_data(data, tmp_path):
    ref = tmp_path / "ref.profile"
    assert CliRunner().invoke(main, ["profile", "build", str(data[("ref", "parquet")]), "-o", str(ref)]).exit_code == 0
    res = CliRunner().invoke(main, ["drift", str(ref), str(data[("drifted", "parquet")]), "--fail-on-drift"])
    assert res.exit_code == 3, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"reference: {ref} (profile of 6,000 rows)"
    assert lines[1].endswith(": 6,000 rows, summarized in this process")
    amount = next(ln for ln in lines if ln.startswith("amount "))
    assert amount.split()[:3] == ["amount", "numerical", "ks"] and amount.endswith("DRIFT")
    assert lines[-1] == "dataset drift: no — 1 of 3 columns drifted (amount); threshold 50% of the columns"
    # the same rows as CSV, the reference as data: the same verdicts
    res = CliRunner().invoke(main, ["drift", str(data[("ref", "csv")]), str(data[("same", "csv")]), "--json",
                                    "--fail-on-drift", "--save-profile", str(tmp_path / "csv.profile")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["engine"] == "local" and doc["report"]["drifted_columns"] == []
    assert doc["report"]["rows_reference"] == doc["report"]["rows_current"] == 6_000
    assert Profile.load(tmp_path / "csv.profile").reference.rows == 6_000


def test_drift_config_and_errors(data, tmp_path):
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("drift:\n  drift_share: 0.3\n")
    args = ["drift", str(data[("ref", "parquet")]), str(data[("drifted", "parquet")]), "--config", str(cfg)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and res.output.splitlines()[-1].startswith("dataset drift: yes — 1 of 3 columns drifted")
    ref = tmp_path / "ref.profile"
    CliRunner().invoke(main, ["profile", "build", str(data[("ref", "parquet")]), "-o", str(ref)])
    res = CliRunner().invoke(main, ["drift", str(ref), str(data[("same", "parquet")]), "--kind", "amount=categorical"])
    assert res.exit_code == 2 and "--kind is for a REFERENCE given as data" in res.output
    res = CliRunner().invoke(main, ["drift", str(ref), str(tmp_path / "missing")])
    assert res.exit_code == 1 and "cannot check drift:" in res.output and "no such file or directory" in res.output
    bad = tmp_path / "bad.profile"
    bad.write_bytes(b"not a profile")
    res = CliRunner().invoke(main, ["drift", str(bad), str(data[("same", "parquet")])])
    assert res.exit_code == 1 and "cannot check drift:" in res.output
    assert not os.path.exists(tmp_path / "missing")


def _sample_block() -> str:
    """The README's sample of ``raywatch drift``'s output (its first line is the command)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    m = re.search(r"<!-- test: output sample covered-by=tests/cli/test_drift_cli.py -->\n```text\n(.*?)```", readme, re.S)
    assert m, "README.md has no sample of raywatch drift's output"
    return m.group(1)


def test_readme_sample_is_what_drift_prints(tmp_path, monkeypatch):
    """The README's sample, run on the data it describes (files' byte counts aside)."""
    import re

    monkeypatch.chdir(tmp_path)
    for name, seed, shift in (("reference", 0, 0.0), ("current", 2, 1.0)):
        d = tmp_path / "data" / name
        d.mkdir(parents=True)
        for i in range(3):
            pq.write_table(_frame(2_000, seed * 10 + i, shift), d / f"part-{i}.parquet")
    res = CliRunner().invoke(main, ["profile", "build", "data/reference/", "-o", "fraud.profile"])
    assert res.exit_code == 0, res.output
    command, _, expected = _sample_block().partition("\n")
    assert command.startswith("$ raywatch drift ")
    res = CliRunner().invoke(main, command.split()[2:])
    assert res.exit_code == 0, res.output

    def bytes_aside(text):
        return re.sub(r"[\d,]+ bytes\)", "N bytes)", text)

    assert bytes_aside(res.output) == bytes_aside(expected)
