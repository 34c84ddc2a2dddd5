"""``raywatch profile build`` with the profile's extensions (issue 13): the README's commands
as written, flags over ``profile_options:`` of a raywatch YAML, vector columns from NPZ and
Parquet, and errors that say what is wrong."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from raywatch.cli import main
from raywatch.stats.profile import Profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "readme"))
from readme_blocks import ROOT, of_kind  # noqa: E402


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    p = 1 / (1 + np.exp(-(2 * x1 + x2)))
    score = p ** 1.3
    return {"x1": x1, "x2": x2, "score": score, "prediction": (score >= 0.5).astype(int),
            "label": (rng.random(n) < p).astype(int)}, rng.normal(size=(n, 48))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    cols, emb = _data()
    np.savez(tmp_path / "train.npz", embedding=emb, **cols)
    names = list(cols)
    with (tmp_path / "train.csv").open("w") as fh:
        fh.write(",".join(names) + "\n")
        for i in range(len(cols["x1"])):
            fh.write(",".join(str(cols[k][i]) for k in names) + "\n")
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "monitor-estimation.yaml", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _commands():
    (block,) = [b for b in of_kind("shell") if "test_profile_extensions.py" in b.opts.get("covered-by", "")]
    text = block.text.replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in text.splitlines() if line.strip().startswith("raywatch ")]


def test_the_readme_commands_build_profiles_with_extensions(workdir):
    first, second = _commands()
    res = CliRunner().invoke(main, first)
    assert res.exit_code == 0, res.output
    prof = Profile.load(workdir / "fraud.profile")
    assert set(prof.extensions) == {"performance", "correlation", "pca", "outliers", "vector:embedding"}
    assert "label" not in prof.columns and "embedding" not in prof.columns
    assert "+ performance: label-free performance estimation, classes [0, 1]; calibration score: isotonic, ECE 0.0" in res.output
    assert "+ vector:embedding: vector sketch" in res.output
    res = CliRunner().invoke(main, second)  # from the CSV, the options from the YAML's profile_options
    assert res.exit_code == 0, res.output
    assert set(Profile.load(workdir / "fraud.profile").extensions) == {"performance", "correlation", "pca", "outliers"}
    show = CliRunner().invoke(main, ["profile", "show", "fraud.profile"])
    assert show.exit_code == 0 and "+ pca: PCA for multivariate drift" in show.output


def test_flags_override_the_yaml_and_columns_keep_the_target(workdir):
    res = CliRunner().invoke(main, ["profile", "build", "train.csv", "--config", "configs/monitor-estimation.yaml",
                                    "--pca", "x1,x2", "--pca-variance", "0.9", "--outlier-method", "mad",
                                    "--calibration", "platt", "--columns", "x1,x2,score,prediction", "-o", "p.profile"])
    assert res.exit_code == 0, res.output
    prof = Profile.load(workdir / "p.profile")
    assert prof.columns == ["x1", "x2", "score", "prediction"]
    assert prof.extensions["pca"].reads() == ("x1", "x2")
    assert prof.extensions["performance"].calibrations[0].method == "platt"


def test_vector_columns_from_parquet(workdir):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    cols, emb = _data(500)
    pq.write_table(pa.table({"x1": cols["x1"], "embedding": [list(r) for r in emb]}), workdir / "t.parquet")
    res = CliRunner().invoke(main, ["profile", "build", "t.parquet", "--vector", "embedding=8", "-o", "v.profile"])
    assert res.exit_code == 0, res.output
    assert set(Profile.load(workdir / "v.profile").extensions) == {"vector:embedding"}


def test_errors_name_what_is_wrong(workdir):
    res = CliRunner().invoke(main, ["profile", "build", "train.csv", "--target", "label"])
    assert res.exit_code == 2 and "performance.scores: required field is missing" in res.output
    res = CliRunner().invoke(main, ["profile", "build", "train.csv", "--vector", "embedding"])
    assert res.exit_code == 1 and "a CSV file holds no vector column (embedding)" in res.output
    res = CliRunner().invoke(main, ["profile", "build", "train.csv", "--target", "label", "--scores", "nope"])
    assert res.exit_code == 1 and "column 'nope' is not in the reference data" in res.output
    res = CliRunner().invoke(main, ["profile", "build", "train.csv", "--correlation", "x1,nope"])
    assert res.exit_code == 1 and "correlation: nope are not numerical columns of the reference" in res.output
