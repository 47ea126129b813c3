"""The head stage at real scale: `dgss fit-head` and `dgss evaluate` as a user runs them, timed side by side.

On a cache of real images (the shipped backbone's default extraction of DRIVE and CHASE_DB1), each configuration
is trained on DRIVE's training split with `dgss fit-head`, then scored with `dgss evaluate` on DRIVE's test split
(in domain) and on all 28 CHASE_DB1 images (unseen camera). Every command runs as its own child process; its
wall time and peak resident memory (`wait4`'s ru_maxrss for that child alone) are recorded beside the scores.

Configurations are NAME:key=value,... over the CLI's own defaults, so "default" is exactly what a user gets:

    .venv/bin/python bench/head_real_scale.py --store /work/cache/real.zarr          # default vs whole canvases
    .venv/bin/python bench/head_real_scale.py --store S --config w32:--head-param=width=32 --config e20:--epochs=20

Runs already finished under --runs are reused (delete them to re-time). Output: a table on stdout, and
bench/results/head_real_scale.csv (one row per configuration).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CONFIGS = ["default:", "whole-canvas:--window=0"]
TARGETS = ("DRIVE", "CHASE_DB1")
COLUMNS = ("config", "options", "fit_s", "fit_peak_mib", "eval_chase_s", "eval_chase_peak_mib", "drive_dice",
           "drive_auc", "chase_dice", "chase_auc")


def timed(command: list[str]) -> tuple[float, float]:
    """Run `command`; return its wall seconds and its own peak RSS in MiB. Exits on failure."""
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {shlex.join(command)}")
    return seconds, usage.ru_maxrss / 1024


def pooled(report: Path, target: str) -> dict[str, float]:
    return json.loads((report / target / "scores.json").read_text())["targets"][target]["pooled"]


def run_config(name: str, options: list[str], store: Path, runs: Path, dgss: str) -> dict[str, object]:
    run_dir = runs / name
    row: dict[str, object] = {"config": name, "options": " ".join(options) or "(CLI defaults)"}
    timing_file = run_dir / "bench_timing.json"
    if timing_file.is_file():
        row.update(json.loads(timing_file.read_text()))
    else:
        fit_s, fit_peak = timed([dgss, "fit-head", "--source", "DRIVE", "--store", str(store), "--out", str(run_dir),
                                 "--overwrite", *options])
        chase_s, chase_peak = timed([dgss, "evaluate", "--run", str(run_dir), "--target", "CHASE_DB1",
                                     "--report", str(run_dir / "chase"), "--overwrite"])
        timed([dgss, "evaluate", "--run", str(run_dir), "--target", "DRIVE", "--report", str(run_dir / "drive"),
               "--overwrite"])
        timing = {"fit_s": round(fit_s, 1), "fit_peak_mib": round(fit_peak), "eval_chase_s": round(chase_s, 1),
                  "eval_chase_peak_mib": round(chase_peak)}
        timing_file.write_text(json.dumps(timing))
        row.update(timing)
    drive, chase = pooled(run_dir / "drive", "DRIVE"), pooled(run_dir / "chase", "CHASE_DB1")
    row.update(drive_dice=round(drive["dice"], 4), drive_auc=round(drive["auc_roc"], 4),
               chase_dice=round(chase["dice"], 4), chase_auc=round(chase["auc_roc"], 4))
    settings = json.loads((run_dir / "run.json").read_text())["training"]
    print(f"{name}: training settings {json.dumps(settings)}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="store holding DRIVE and CHASE_DB1 (one key)")
    parser.add_argument("--runs", type=Path, default=Path("bench/runs/head_real_scale"))
    parser.add_argument("--config", action="append", help="NAME:OPTION,OPTION (fit-head options, '=' joined)")
    parser.add_argument("--csv", type=Path, default=Path("bench/results/head_real_scale.csv"))
    args = parser.parse_args()
    dgss = str(Path(sys.executable).with_name("dgss"))
    print(f"torch threads: {os.environ.get('OMP_NUM_THREADS', 'torch default')}, cores: {os.cpu_count()}")
    rows = []
    for spec in args.config or DEFAULT_CONFIGS:
        name, _, text = spec.partition(":")
        options = [part for option in text.split(",") if option for part in option.split("=", 1)]
        rows.append(run_config(name, options, args.store, args.runs, dgss))
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    existing = list(csv.DictReader(args.csv.open())) if args.csv.is_file() else []
    names = {row["config"] for row in rows}
    with args.csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows([row for row in existing if row["config"] not in names] + rows)
    print("\n" + " | ".join(COLUMNS))
    for row in rows:
        print(" | ".join(str(row[column]) for column in COLUMNS))
    base = rows[0]
    for row in rows[1:]:
        print(f"{row['config']} vs {base['config']}: fit time x{row['fit_s'] / base['fit_s']:.2f}, "
              f"fit peak x{row['fit_peak_mib'] / base['fit_peak_mib']:.2f}, CHASE_DB1 Dice "
              f"{row['chase_dice'] - base['chase_dice']:+.4f}, AUC {row['chase_auc'] - base['chase_auc']:+.4f}")


if __name__ == "__main__":
    main()
