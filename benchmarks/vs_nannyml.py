"""raywatch's label-free performance estimation against NannyML's CBPE, on the same data.

NannyML is not a raywatch dependency (it brings pandas, scikit-learn, LightGBM and more), so it
runs in a separate interpreter that has it installed, given with ``--nannyml-python``::

    python -m venv /tmp/nannyml-venv && /tmp/nannyml-venv/bin/pip install nannyml==0.13.1 statsmodels
    python benchmarks/vs_nannyml.py --nannyml-python /tmp/nannyml-venv/bin/python          # full
    python benchmarks/vs_nannyml.py --nannyml-python /tmp/nannyml-venv/bin/python --quick  # < 60 s

(NannyML 0.13.1 imports statsmodels without declaring it, hence the second package.)

Datasets, each a labelled reference and a labelled analysis period cut into 5,000-row windows:

* ``covariate`` — binary; four normal features whose means and spread drift across the
  windows; the label's law given the features never changes, and the model's score is a
  miscalibrated monotone function of the true log-odds (so calibration matters).
* ``prior`` — binary; a two-population mixture whose mixing weight moves the positive rate
  from 20 % to 60 % across the windows, again without concept drift.
* ``car_loan`` — NannyML's own synthetic car-loan dataset (binary), exported from the NannyML
  interpreter, analysis labels joined by id.
* ``multiclass`` — NannyML's synthetic credit-card dataset (three classes).

For every window both tools estimate ROC AUC and accuracy (multiclass: macro one-vs-rest ROC
AUC); the realized values come from the window's labels (exact, tie-aware). Printed per dataset:
each tool's mean absolute error against the realized values and its run time. Timed for NannyML:
``CBPE(...).fit(reference)`` + ``.estimate(analysis)`` on DataFrames in memory. Timed for
raywatch: ``Profile.fit`` of the model's outputs with the performance extension (calibration,
score bins, sampling-error components), then per window ``profile.summarize`` (what replicas do)
and ``estimate_performance`` (what the stats actor does). The last line of stdout is one JSON
object; ``target_met`` is true when raywatch's error is no larger than NannyML's for both
metrics on every dataset and raywatch is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raywatch.drift.estimation import estimate_performance  # noqa: E402
from raywatch.stats.profile import Profile  # noqa: E402

WINDOW = 5000

# Runs inside the NannyML interpreter. "export": write NannyML's datasets as npz files.
# "run": fit CBPE per dataset, estimate per 5,000-row chunk, print JSON.
NANNYML_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
import nannyml as nml

mode, cfg = sys.argv[1], json.loads(sys.argv[2])
if mode == "export":
    def save(path, ref, ana, tgt, target, scores, quick):
        ana = ana.merge(tgt, on="id")
        if quick:
            ref, ana = ref.iloc[:20000], ana.iloc[:40000]
        ana = ana.iloc[: len(ana) // 5000 * 5000]
        out = {}
        for prefix, df in (("ref_", ref), ("ana_", ana)):
            for c in scores:
                out[prefix + c] = df[c].to_numpy(dtype=np.float64)
            for c in ("y_pred", target):
                v = df[c].to_numpy()
                out[prefix + ("y_true" if c == target else c)] = v.astype(str) if v.dtype == object or str(v.dtype) in ("str", "string") else v
        np.savez(path, **out)
    r, a, t = nml.load_synthetic_car_loan_dataset()
    save(cfg["car_loan"], r, a, t, "repaid", ["y_pred_proba"], cfg["quick"])
    r, a, t = nml.load_synthetic_multiclass_classification_dataset()
    a = a.drop(columns=[c for c in ("y_true",) if c in a.columns])
    save(cfg["multiclass"], r, a, t, "y_true",
         ["y_pred_proba_prepaid_card", "y_pred_proba_highstreet_card", "y_pred_proba_upmarket_card"], cfg["quick"])
    print(json.dumps({"version": nml.__version__}))
    sys.exit(0)

out = {}
for ds in cfg["datasets"]:
    z = np.load(ds["path"], allow_pickle=False)
    ref = pd.DataFrame({k[4:]: z[k] for k in z.files if k.startswith("ref_")})
    ana = pd.DataFrame({k[4:]: z[k] for k in z.files if k.startswith("ana_")})
    ana = ana.drop(columns=["y_true"])
    proba = ds["proba"] if isinstance(ds["proba"], str) else dict(ds["proba"])
    t0 = time.perf_counter()
    cbpe = nml.CBPE(problem_type=ds["problem"], y_pred_proba=proba, y_pred="y_pred", y_true="y_true",
                    metrics=["roc_auc", "accuracy"], chunk_size=5000)
    cbpe.fit(ref)
    res = cbpe.estimate(ana)
    seconds = time.perf_counter() - t0
    d = res.filter(period="analysis").to_df()
    out[ds["name"]] = {"seconds": seconds, "roc_auc": d[("roc_auc", "value")].tolist(),
                       "accuracy": d[("accuracy", "value")].tolist()}
print(json.dumps({"results": out, "version": nml.__version__}))
"""


# ----------------------------------------------------------------- synthetic data


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def covariate(rng, ref_rows, windows):
    w = np.array([1.2, -0.8, 0.6, 0.4])

    def draw(n, shift, scale):
        x = rng.normal(shift, scale, size=(n, 4))
        z = x @ w - 0.3
        y = (rng.random(n) < _sigmoid(z)).astype(np.int64)
        score = _sigmoid(1.8 * z + 0.4)  # overconfident and biased, but monotone in the truth
        return score, y

    ref = draw(ref_rows, np.zeros(4), 1.0)
    parts = [draw(WINDOW, np.array([1.0, 0.8, -0.5, 0.0]) * t, 1.0 + 0.6 * t) for t in np.linspace(0, 1, windows)]
    return ref, tuple(np.concatenate(p) for p in zip(*parts))


def prior(rng, ref_rows, windows):
    def draw(n, weight):
        hi = rng.random(n) < weight
        x = np.where(hi[:, None], rng.normal(1.0, 1.0, (n, 2)), rng.normal(-1.2, 1.0, (n, 2)))
        z = 1.5 * x[:, 0] + 0.7 * x[:, 1] - 0.5
        y = (rng.random(n) < _sigmoid(z)).astype(np.int64)
        return _sigmoid(0.6 * z - 0.2), y  # underconfident
    ref = draw(ref_rows, 0.2)
    parts = [draw(WINDOW, t) for t in np.linspace(0.2, 0.65, windows)]
    return ref, tuple(np.concatenate(p) for p in zip(*parts))


def save_synthetic(path, ref, ana):
    (s_r, y_r), (s_a, y_a) = ref, ana
    np.savez(path, ref_y_pred_proba=s_r, ref_y_pred=(s_r >= 0.5).astype(np.int64), ref_y_true=y_r,
             ana_y_pred_proba=s_a, ana_y_pred=(s_a >= 0.5).astype(np.int64), ana_y_true=y_a)


# ----------------------------------------------------------------- realized truth


def auc(y, s):
    """Exact, tie-aware ROC AUC (Mann–Whitney)."""
    y = np.asarray(y, dtype=bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    r = rankdata(s)
    return float((r[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def realized(z, classes, proba):
    y, pred = z["ana_y_true"], z["ana_y_pred"]
    out = {"roc_auc": [], "accuracy": []}
    for i in range(0, y.size, WINDOW):
        yi, pi = y[i:i + WINDOW], pred[i:i + WINDOW]
        out["accuracy"].append(float(np.mean(yi == pi)))
        if isinstance(proba, str):
            out["roc_auc"].append(auc(yi == classes[-1], z["ana_" + proba][i:i + WINDOW]))
        else:
            out["roc_auc"].append(float(np.mean([auc(yi == c, z["ana_" + col][i:i + WINDOW]) for c, col in proba.items()])))
    return out


# ----------------------------------------------------------------------- raywatch


def run_raywatch(z, proba):
    cols = [proba] if isinstance(proba, str) else list(proba.values())
    t0 = time.perf_counter()
    ref = {c: z["ref_" + c] for c in cols}
    ref.update(y_pred=z["ref_y_pred"], y_true=z["ref_y_true"])
    profile = Profile.fit(ref, seed=0, sample_size=1000, performance={
        "target": "y_true", "scores": proba, "prediction": "y_pred", "positive": 1})
    est = profile.extensions["performance"]
    out = {"roc_auc": [], "accuracy": []}
    n = z["ana_y_pred"].size
    for i in range(0, n, WINDOW):
        window = {c: z["ana_" + c][i:i + WINDOW] for c in cols}
        window["y_pred"] = z["ana_y_pred"][i:i + WINDOW]
        e = estimate_performance(est, profile.summarize(window, seed=i).sections["performance"])
        out["roc_auc"].append(e.value("roc_auc"))
        out["accuracy"].append(e.value("accuracy"))
    out["seconds"] = time.perf_counter() - t0
    out["calibration"] = [c.method for c in est.calibrations]
    return out


def mae(a, b):
    return float(np.mean(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nannyml-python", default=os.environ.get("NANNYML_PYTHON", "/tmp/nannyml-venv/bin/python"),
                    help="a Python interpreter with nannyml installed")
    ap.add_argument("--quick", action="store_true", help="smaller reference and fewer windows: within 60 s")
    args = ap.parse_args(argv)
    probe = subprocess.run([args.nannyml_python, "-c", "import nannyml"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"{args.nannyml_python} cannot import nannyml; see --help for how to install it beside raywatch")

    ref_rows, windows = (20_000, 8) if args.quick else (50_000, 20)
    rng = np.random.default_rng(13)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: os.path.join(tmp, name + ".npz") for name in ("covariate", "prior", "car_loan", "multiclass")}
        save_synthetic(paths["covariate"], *covariate(rng, ref_rows, windows))
        save_synthetic(paths["prior"], *prior(rng, ref_rows, windows))
        export = subprocess.run([args.nannyml_python, "-c", NANNYML_SCRIPT, "export",
                                 json.dumps({**paths, "quick": args.quick})], capture_output=True, text=True)
        if export.returncode != 0:
            sys.exit(f"NannyML export failed:\n{export.stderr[-2000:]}")
        mc = {c: f"y_pred_proba_{c}" for c in ("highstreet_card", "prepaid_card", "upmarket_card")}
        datasets = [
            {"name": "covariate", "path": paths["covariate"], "problem": "classification_binary", "proba": "y_pred_proba"},
            {"name": "prior", "path": paths["prior"], "problem": "classification_binary", "proba": "y_pred_proba"},
            {"name": "car_loan", "path": paths["car_loan"], "problem": "classification_binary", "proba": "y_pred_proba"},
            {"name": "multiclass", "path": paths["multiclass"], "problem": "classification_multiclass", "proba": mc},
        ]
        proc = subprocess.run([args.nannyml_python, "-c", NANNYML_SCRIPT, "run", json.dumps({"datasets": datasets})],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"NannyML failed:\n{proc.stderr[-2000:]}")
        theirs = json.loads(proc.stdout.strip().splitlines()[-1])
        rows, target_met = {}, True
        ours_total = theirs_total = 0.0
        for ds in datasets:
            z = dict(np.load(ds["path"], allow_pickle=False))
            classes = sorted(np.unique(z["ref_y_true"]).tolist())
            truth = realized(z, classes, ds["proba"])
            ours = run_raywatch(z, ds["proba"])
            nm = theirs["results"][ds["name"]]
            row = {"windows": len(truth["accuracy"])}
            for metric in ("roc_auc", "accuracy"):
                a, b = mae(ours[metric], truth[metric]), mae(nm[metric], truth[metric])
                row[f"raywatch_mae_{metric}"], row[f"nannyml_mae_{metric}"] = round(a, 5), round(b, 5)
                target_met &= a <= b + 1e-6  # equal maps give equal estimates to rounding
            row["raywatch_seconds"] = round(ours["seconds"], 4)
            row["nannyml_seconds"] = round(nm["seconds"], 3)
            row["raywatch_calibration"] = ours["calibration"]
            ours_total += ours["seconds"]
            theirs_total += nm["seconds"]
            rows[ds["name"]] = row
            print(f"{ds['name']:>10}: MAE roc_auc raywatch {row['raywatch_mae_roc_auc']:.4f} nannyml "
                  f"{row['nannyml_mae_roc_auc']:.4f} | accuracy raywatch {row['raywatch_mae_accuracy']:.4f} nannyml "
                  f"{row['nannyml_mae_accuracy']:.4f} | {row['raywatch_seconds']:.3f} s vs {row['nannyml_seconds']:.2f} s",
                  file=sys.stderr)
    result = {
        "benchmark": "vs_nannyml",
        "quick": bool(args.quick),
        "window_rows": WINDOW,
        "nannyml_version": theirs["version"],
        "datasets": rows,
        "raywatch_seconds": round(ours_total, 3),
        "nannyml_seconds": round(theirs_total, 3),
        "speedup": round(theirs_total / ours_total, 1),
        "target_met": bool(target_met and ours_total < theirs_total),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
