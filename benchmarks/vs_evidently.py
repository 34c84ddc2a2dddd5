"""raywatch's drift engine against Evidently's DataDriftPreset, on the same data, in one run.

Evidently is not a raywatch dependency (it brings pandas, scikit-learn, plotly and more), so it
runs in a separate interpreter that has it installed, given with ``--evidently-python``::

    python -m venv /tmp/ev && /tmp/ev/bin/pip install evidently 'pandas<2.3'
    python benchmarks/vs_evidently.py --evidently-python /tmp/ev/bin/python          # 1M × 20
    python benchmarks/vs_evidently.py --evidently-python /tmp/ev/bin/python --quick  # 100k rows

The data is ``benchmarks/drift_engine.py``'s (20 numerical + 3 categorical columns; two
numerical and one categorical column drift), written once to an ``.npz`` file that both sides
read. Timed: raywatch ``profile.summarize(current)`` + ``detect_drift`` (the profile is fitted
beforehand, as in production); Evidently ``Report([DataDriftPreset()]).run(current, reference)``
on pandas DataFrames already in memory. raywatch runs before and after Evidently (its median is
reported) so both see the machine in the same state. Also reported: which columns each tool
flags as drifted, so the speed is not bought with a different answer. The last line of stdout
is one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_engine import parse_args, reference_and_current  # noqa: E402

from raywatch.drift.detect import detect_drift  # noqa: E402
from raywatch.stats.profile import Profile  # noqa: E402

# Runs inside the Evidently interpreter: loads the npz, times the preset, prints JSON.
EVIDENTLY_SCRIPT = r"""
import json, sys, time
import numpy as np, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

z = np.load(sys.argv[1], allow_pickle=False)
ref = pd.DataFrame({k[4:]: z[k] for k in z.files if k.startswith("ref_")})
cur = pd.DataFrame({k[4:]: z[k] for k in z.files if k.startswith("cur_")})
t0 = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(cur, ref)
seconds = time.perf_counter() - t0
drifted = []
for m in snapshot.dict()["metrics"]:
    cfg = m.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        value, threshold, method = float(m["value"]), float(cfg["threshold"]), cfg.get("method", "")
        # p-value methods drift below the threshold, distances above it
        is_p = "p_value" in method or "test" in method.lower()
        if (value < threshold) if is_p else (value >= threshold):
            drifted.append(cfg["column"])
import evidently
print(json.dumps({"seconds": seconds, "drifted": sorted(drifted), "version": evidently.__version__}))
"""


def main(argv=None) -> dict:
    args = parse_args(
        argv, __doc__,
        lambda ap: ap.add_argument("--evidently-python", default=sys.executable, help="a Python interpreter with evidently installed"),
    )

    probe = subprocess.run([args.evidently_python, "-c", "import evidently"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"{args.evidently_python} cannot import evidently; see --help for how to install it beside raywatch")

    reference, current = reference_and_current(args)
    profile = Profile.fit(reference, seed=0)

    def run_raywatch() -> tuple:
        t0 = time.perf_counter()
        report = detect_drift(profile, profile.summarize(current))
        return time.perf_counter() - t0, sorted(report.drifted_columns)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **{f"ref_{k}": v for k, v in reference.items()}, **{f"cur_{k}": v for k, v in current.items()})
        ours = [run_raywatch() for _ in range(3)]
        proc = subprocess.run([args.evidently_python, "-c", EVIDENTLY_SCRIPT, path], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"Evidently failed:\n{proc.stderr[-2000:]}")
        theirs = json.loads(proc.stdout.strip().splitlines()[-1])
        ours += [run_raywatch() for _ in range(3)]

    raywatch_seconds = statistics.median(t for t, _ in ours)
    result = {
        "benchmark": "vs_evidently",
        "quick": args.quick,
        "rows": args.rows,
        "features": args.features + args.categorical,
        "evidently_version": theirs["version"],
        "raywatch_seconds": round(raywatch_seconds, 4),
        "evidently_seconds": round(theirs["seconds"], 3),
        "speedup": round(theirs["seconds"] / raywatch_seconds, 1),
        "raywatch_drifted": ours[0][1],
        "evidently_drifted": theirs["drifted"],
        "same_verdict": ours[0][1] == theirs["drifted"],
        "target_speedup": 100,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
