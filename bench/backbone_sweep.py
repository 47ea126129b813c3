"""Compare backbone recipes at equal CPU time, each scored by the linear probe (run by hand; hours).

    nice -n 19 env OMP_NUM_THREADS=1 python bench/backbone_sweep.py --minutes-per-candidate 20 [--threads 1]
        [--candidates v1,wide,...] [--pool ../shared/pretrain/FUNDUS-POOL] [--runs-dir bench/runs/backbone_sweep]
        [--out bench/results/backbone_sweep.csv] [PROBE OPTIONS: --pixels-per-image 10000 --limit 4 --canvas 512 ...]

Each candidate of bench/backbone_recipes.py (all, or those of --candidates) is trained from the unlabelled pool into
RUNS_DIR/NAME until it has spent --minutes-per-candidate of this process's CPU time (pool decoding and checkpoints
included; --threads torch threads), so that every recipe gets the same compute even on a machine shared with other
work. Then the linear probe of bench/backbone_probe.py scores its EMA weights (its `backbone` source only: fitted on
DRIVE training pixels, Dice / AUC on DRIVE test and CHASE_DB1). Every option the sweep does not know is the probe's,
read by the probe's own parser with its defaults, so the scores follow its protocol exactly.

Rerunning the same command continues: a run short of its budget resumes exactly (also after a kill, from its last
checkpoint), a finished one is kept, and its probe scores (RUN/probe.json) are reused while the run's step and the
probe's settings stay the same. A larger --minutes-per-candidate later continues every run; a candidate whose
length comes from another (cosine: as many steps as v1 reached) keeps the steps it started with.

The table (printed, written to --out as CSV and beside it as markdown) lists every candidate whose run in the runs
folder is scored with these probe settings, including those of another --candidates selection.

The real sweep, on 2 cores: two processes of one thread each, v1 before cosine (which takes v1's steps):

    nice -n 19 env OMP_NUM_THREADS=1 python bench/backbone_sweep.py --minutes-per-candidate 20 \\
        --candidates v1,cosine,wide --pixels-per-image 10000 &
    nice -n 19 env OMP_NUM_THREADS=1 python bench/backbone_sweep.py --minutes-per-candidate 20 \\
        --candidates deep,crop128,attention,x0 --pixels-per-image 10000; wait

(--pixels-per-image 10000 as in bench/results/backbone_probe.txt, where the shipped v1 scored CHASE_DB1 Dice 0.603
after 45 min). About 2 h on 2 idle cores: 20 min per candidate, of which decoding the 2,755-photo pool takes
1.3, plus a probe of 6 min (v1's size) to 20 min (wide). One thread of a loaded 2-core CPU took 1.5 CPU s per step
for v1, crop128, attention, x0 and cosine, 2.8 for deep, 5.6 for wide (v1's own run: 0.83 s), so 20 minutes give
wide 200-400 steps and v1 750-1,400 (it shipped after 3,250): short budgets favour small models.
--minutes-per-candidate 45 gives every candidate v1's budget (the v1 candidate then follows the shipped run step for
step: a constant rate does not depend on the planned length) for about 4 h. Then run either command once more for
the whole table, and train the winner long:

    OMP_NUM_THREADS=1 python bench/train_shipped_backbone.py --pool POOL --name fundus-pool-v2 --recipe NAME \\
        --steps 20000 --time-budget-minutes 120
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import backbone_probe  # bench/ is on sys.path when a bench script runs
from backbone_recipes import CANDIDATES, recipe
from dgss.backbone.loading import load_backbone
from dgss.datasets import get_dataset, source_ids, target_ids
from dgss.extract.preprocess import CanvasImage
from dgss.pretrain.checkpoint import find_checkpoint, load_checkpoint
from dgss.pretrain.outputs import TRAINING_FILE
from dgss.pretrain.presets import BackboneTrainingConfig
from dgss.pretrain.training import train_backbone

BENCH = Path(__file__).resolve().parent
RUNS_DIR = BENCH / "runs" / "backbone_sweep"
PROBE_FILE = "probe.json"
# Constant-rate candidates stop at their budget, never at a step count.
UNBOUNDED_STEPS = 10**7
# Checkpoints (and their samples) fall inside the budget: few, cheap samples keep them under 2% of it.
RUN_SETTINGS: dict[str, Any] = dict(checkpoint_every=500, sample_count=4, sample_steps=20)
# The probe settings a score depends on: a cached score is reused only when they are the same.
PROBE_SETTINGS = ("canvas", "timesteps", "blocks", "input_size", "tile_overlap", "pixels_per_image", "data_root",
                  "limit", "seed")
TARGETS = ("DRIVE test", "CHASE_DB1")


def _run_record(run: Path) -> dict[str, Any] | None:
    """Where a run stands, from its checkpoint: step, planned steps, CPU and wall seconds, final loss, parameters;
    None before its first checkpoint."""
    checkpoint = find_checkpoint(run)
    if checkpoint is None:
        return None
    state = load_checkpoint(checkpoint, torch.device("cpu"))
    planned = json.loads((run / TRAINING_FILE).read_text())["config"]["steps"]
    return {
        "step": state["step"],
        "steps": planned,
        "cpu_s": sum(piece["cpu_s"] for piece in state["pieces"]),
        "wall_s": state["wall_s"],
        "final_loss": float(np.mean(state["losses"][-100:])),
        "params_m": sum(tensor.numel() for tensor in state["ema"].values()) / 1e6,
    }


def _finished(record: dict[str, Any] | None, budget_s: float) -> bool:
    return record is not None and (record["cpu_s"] >= budget_s or record["step"] >= record["steps"])


def _planned_steps(name: str, runs_dir: Path, budget_s: float) -> int:
    """The steps a candidate's run is configured with: its own record's, else UNBOUNDED_STEPS, else (cosine) the
    steps its `steps_of` candidate reached in its finished budget."""
    run = runs_dir / name
    if (run / TRAINING_FILE).is_file():
        return json.loads((run / TRAINING_FILE).read_text())["config"]["steps"]
    source = CANDIDATES[name].steps_of
    if source is None:
        return UNBOUNDED_STEPS
    record = _run_record(runs_dir / source)
    if not _finished(record, budget_s):
        raise SystemExit(f"{name} trains as many steps as {source} reached in its budget: finish {source} first "
                         f"(list it before {name} in --candidates, or let the other process finish it) and rerun")
    return record["step"]


def train_candidate(name: str, pool: Path, runs_dir: Path, budget_s: float) -> dict[str, Any]:
    """Train (or continue) candidate `name` until it has spent `budget_s` CPU seconds; returns its run record."""
    run = runs_dir / name
    record = _run_record(run)
    if _finished(record, budget_s):
        print(f"{name}: finished before (step {record['step']}, {record['cpu_s'] / 60:.1f} CPU min), kept", flush=True)
        return record
    config = BackboneTrainingConfig.from_preset(
        "tiny", steps=_planned_steps(name, runs_dir, budget_s), **RUN_SETTINGS, **recipe(name))
    spent = 0.0 if record is None else record["cpu_s"]
    print(f"{name}: training for {(budget_s - spent) / 60:.2f} CPU min ({CANDIDATES[name].change})", flush=True)
    train_backbone(config, [str(pool)], run, resume=(run / TRAINING_FILE).is_file(), time_budget_s=budget_s - spent,
                   budget_clock="cpu")
    return _run_record(run)


def probe_options(extra: Sequence[str]) -> argparse.Namespace:
    """The probe's own parser reads the options the sweep does not know, so the scores follow its protocol and its
    defaults exactly (its --model is the candidate's run, filled in when scoring)."""
    return backbone_probe.parse_args(["--model", "", *extra])


def probe_settings(options: argparse.Namespace) -> dict[str, Any]:
    settings = {name: getattr(options, name) for name in PROBE_SETTINGS}
    return {**settings, "data_root": str(Path(options.data_root).resolve())}


@functools.cache
def _probe_images(data_root: str, canvas: int, limit: int | None
                  ) -> tuple[list[CanvasImage], dict[str, list[CanvasImage]]]:
    """DRIVE training canvases and the target sets, as bench/backbone_probe.py reads them; once per process."""
    drive, chase = get_dataset("DRIVE", data_root), get_dataset("CHASE_DB1", data_root)
    sets = {"train": ("DRIVE", source_ids(drive)), TARGETS[0]: ("DRIVE", target_ids(drive)),
            TARGETS[1]: ("CHASE_DB1", target_ids(chase))}
    canvases = {key: backbone_probe.load_canvases(name, ids[:limit], data_root, canvas)
                for key, (name, ids) in sets.items()}
    return canvases.pop("train"), canvases


def score_run(run: Path, options: argparse.Namespace) -> dict[str, Any]:
    """The probe's `backbone` row for the EMA weights in `run`: scores per target, features, threshold, timings."""
    train, targets = _probe_images(str(Path(options.data_root).resolve()), options.canvas, options.limit)
    backbone = load_backbone(run, options.device)
    extractor = backbone_probe.diffusion_extractor(backbone, options, options.blocks)
    result = backbone_probe.run_probe(backbone_probe.DiffusionSource("backbone", extractor), train, targets, options)
    return {"scores": result.scores, "features": result.features, "threshold": result.threshold,
            "fit_s": result.fit_s, "score_s": result.score_s}


def probe_candidate(name: str, runs_dir: Path, record: dict[str, Any], options: argparse.Namespace
                    ) -> dict[str, Any]:
    """The candidate's probe result, from RUN/probe.json when it scored this step with these settings."""
    cached, settings = runs_dir / name / PROBE_FILE, probe_settings(options)
    if cached.is_file():
        saved = json.loads(cached.read_text())
        if saved["step"] == record["step"] and saved["settings"] == settings:
            print(f"{name}: probe scores of step {record['step']} reused", flush=True)
            return saved["result"]
    print(f"{name}: probing step {record['step']}", flush=True)
    result = score_run(runs_dir / name, options)
    cached.write_text(json.dumps({"step": record["step"], "settings": settings, "result": result}, indent=2) + "\n")
    return result


def table_rows(runs_dir: Path, options: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per candidate whose run is scored, at its current step, with these probe settings (table order)."""
    rows, settings = [], probe_settings(options)
    for name, candidate in CANDIDATES.items():
        cached = runs_dir / name / PROBE_FILE
        if not cached.is_file():
            continue
        saved, record = json.loads(cached.read_text()), _run_record(runs_dir / name)
        if record is None or saved["step"] != record["step"] or saved["settings"] != settings:
            continue
        rows.append({"candidate": name, "change": candidate.change, **record, **saved["result"]})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    header = ["candidate", "change from v1", "params M", "steps", "final loss",
              *(f"{target} Dice / AUC" for target in TARGETS), "CPU min", "wall min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["candidate"], row["change"], f"{row['params_m']:.2f}", str(row["step"]),
                 f"{row['final_loss']:.4f}"]
        cells += [f"{row['scores'][t]['dice']:.3f} / {row['scores'][t]['auc_roc']:.3f}" for t in TARGETS]
        cells += [f"{row['cpu_s'] / 60:.1f}", f"{row['wall_s'] / 60:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """One row per candidate, with the probe settings so that a row can be reproduced on its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = [(target, metric) for target in TARGETS for metric in ("dice", "auc_roc")]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["candidate", "change", "params_m", "steps", "final_loss",
                         *(f"{t.replace(' ', '_')}_{m}" for t, m in metrics), "cpu_min", "wall_min", "n_features",
                         "threshold", *settings])
        for row in rows:
            writer.writerow([row["candidate"], row["change"], f"{row['params_m']:.3f}", row["step"],
                             f"{row['final_loss']:.5f}", *(f"{row['scores'][t][m]:.4f}" for t, m in metrics),
                             f"{row['cpu_s'] / 60:.2f}", f"{row['wall_s'] / 60:.2f}", row["features"],
                             f"{row['threshold']:.4f}", *(_cell(value) for value in settings.values())])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """The sweep's options, and the probe's (every other option, checked now rather than after hours of training)."""
    # No abbreviations: a prefix of a probe option (--t for --timesteps) must not be taken for the sweep's.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                     epilog="Any other option is bench/backbone_probe.py's (e.g. --limit, --canvas).")
    parser.add_argument("--minutes-per-candidate", type=float, default=20.0,
                        help="CPU minutes each candidate trains, this process's (default: 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default: 1)")
    parser.add_argument("--candidates", type=lambda text: text.split(","), default=list(CANDIDATES),
                        help=f"comma list of {', '.join(CANDIDATES)} (default: all)")
    parser.add_argument("--pool", type=Path, default=BENCH.parent.parent / "shared" / "pretrain" / "FUNDUS-POOL",
                        help="flat folder of unlabelled fundus photos (default: ../shared/pretrain/FUNDUS-POOL)")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="one run folder per candidate")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "backbone_sweep.csv",
                        help="CSV of the table; the markdown goes beside it (.md)")
    args, extra = parser.parse_known_args(argv)
    unknown = sorted(set(args.candidates) - set(CANDIDATES))
    if unknown:
        parser.error(f"--candidates: unknown {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    return args, probe_options(extra)


def main(argv: Sequence[str] | None = None) -> None:
    args, options = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    budget_s = 60 * args.minutes_per_candidate
    # A candidate whose length comes from another trains after it.
    selected = sorted(dict.fromkeys(args.candidates), key=lambda name: CANDIDATES[name].steps_of is not None)
    with threadpool_limits(args.threads):
        for name in selected:
            record = train_candidate(name, args.pool, args.runs_dir, budget_s)
            probe_candidate(name, args.runs_dir, record, options)
    rows = table_rows(args.runs_dir, options)
    table = markdown_table(rows)
    settings = probe_settings(options)
    best = max(rows, key=lambda row: row["scores"]["CHASE_DB1"]["dice"])
    note = (f"Backbones trained for {args.minutes_per_candidate:g} CPU min each ({args.threads} thread(s)) on "
            f"{args.pool.name}; linear probe (bench/backbone_probe.py) fitted on DRIVE training pixels "
            f"({settings['pixels_per_image']} per image, limit {settings['limit']}), canvas {settings['canvas']} px, "
            f"timesteps {settings['timesteps']}. Final loss: mean of the last 100 steps (x0 and epsilon losses do "
            f"not compare). Highest CHASE_DB1 Dice (the unseen domain): {best['candidate']}.")
    print(f"\n{note}\n\n{table}")
    write_csv(args.out, rows, settings)
    args.out.with_suffix(".md").write_text(f"{note}\n\n{table}\n")
    print(f"\nwritten to {args.out} and {args.out.with_suffix('.md')}; wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
