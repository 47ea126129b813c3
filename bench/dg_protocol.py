"""The domain-generalization protocol: heads trained on some cameras, scored on cameras they never saw.

Protocols (DRIVE, STARE and CHASE_DB1 from ../shared/datasets, extracted into one store under one key):

    single-DRIVE   train on DRIVE's training split; score DRIVE test (in domain), STARE and CHASE_DB1 (unseen)
    loo-DRIVE      train on STARE + CHASE_DB1; score DRIVE test
    loo-STARE      train on DRIVE training + CHASE_DB1; score STARE
    loo-CHASE_DB1  train on DRIVE training + STARE; score CHASE_DB1

Every head (`tsfreqagg`, `mlp`, `unet`) is trained by `dgss fit-head` with the CLI's defaults plus the variant's
options, from the same cache: the U-Net reads the cached canvas image, which is the appearance-matched canvas the
backbone saw. Scores are `dgss evaluate`'s, pooled inside the FOV at native resolution, at each run's
source-validation threshold. Each command is a child process, timed. The CLI's defaults change over time: the
rows of bench/results before 2026-12-08 trained T&S-FreqAgg for 40 epochs (80 since). A finished run is reused only
where fit-head confirms it was trained with the options and defaults asked for; a run from before a default changed
stops the bench with the setting named (pass it in --options, or use another --runs folder).

Resumable and incremental: finished runs and evaluations under --runs are reused, a stopped fit-head continues
(--resume), and work goes seed by seed, so a --budget-minutes cut leaves whole seeds. Rows are merged into
bench/results/dg_protocol.csv (one per variant, protocol, target, head, seed); the mean and standard deviation
over seeds are written as a markdown table (.md) and, per variant, a chart of Dice and AUC per target and head
(dg_protocol.png for the defaults, dg_protocol_VARIANT.png for another variant).

    .venv/bin/python bench/dg_protocol.py --store /work/cache/real.zarr
    .venv/bin/python bench/dg_protocol.py --store S --variant flips --options=--flips --protocol single-DRIVE --seeds 0
    .venv/bin/python bench/dg_protocol.py --store S --variant otsu --runs-of default --threshold otsu   # no fitting
    .venv/bin/python bench/dg_protocol.py --store S --variant tta --runs-of flips --tta on   # force test-time flips
    .venv/bin/python bench/dg_protocol.py --store S --head unet-reference --protocol single-DRIVE   # the strong U-Net
    .venv/bin/python bench/dg_protocol.py --store S --variant photo2 --views 2   # + DRIVE+photo1, DRIVE+photo2, ...

--views K adds photometric views 1..K of every source as extra sources (`dgss extract --dataset DRIVE+photo1`
first: the bench reads the cache only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dgss.datasets import view_names

PROTOCOLS = {
    "single-DRIVE": (["DRIVE"], ["DRIVE", "STARE", "CHASE_DB1"]),
    "loo-DRIVE": (["STARE", "CHASE_DB1"], ["DRIVE"]),
    "loo-STARE": (["DRIVE", "CHASE_DB1"], ["STARE"]),
    "loo-CHASE_DB1": (["DRIVE", "STARE"], ["CHASE_DB1"]),
}
HEADS = {"tsfreqagg": [], "mlp": ["--head", "mlp"], "unet": ["--head", "unet"],
         "unet-reference": ["--recipe", "unet-reference"]}
"""`unet` is dgss's old U-Net at the fit-head defaults; `unet-reference` the strong plain U-Net every DG table compares
against (`dgss fit-head --recipe unet-reference`)."""
METRICS = ("dice", "auc_roc", "auc_pr", "sensitivity", "specificity")
COLUMNS = ("variant", "protocol", "target", "unseen", "head", "seed", *METRICS, "image_dice_mean", "threshold",
           "n_images", "fit_s", "eval_s")
IDENTITY = ("variant", "protocol", "target", "head", "seed")  # what makes a row one measurement


def timed(command: list[str]) -> float:
    """Run `command`; its wall seconds. Exits on failure. A SIGTERM to the bench stops the command too (subprocess
    kills its child on the exit it raises), so no orphan goes on to write a run the bench never timed."""
    signal.signal(signal.SIGTERM, lambda number, _: sys.exit(128 + number))
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    if subprocess.run(command).returncode != 0:
        sys.exit(f"failed: {shlex.join(command)}")
    return time.perf_counter() - start


def report_name(threshold: str | None, tta: str | None = None) -> str:
    """The run's evaluation folder for a `dgss evaluate --threshold` (None: the run's own thresholds) and test-time
    flips forced `on` or `off` (None: evaluate's default, on for runs trained with --flips)."""
    name = "evaluation" if threshold is None else f"evaluation-threshold-{threshold}"
    return {None: name, "on": f"{name}-tta", "off": f"{name}-no-tta"}[tta]


def eval_name(threshold: str | None, tta: str | None = None) -> str:
    """The timing entry of that evaluation."""
    name = "eval_s" if threshold is None else f"eval_s_threshold_{threshold}"
    return {None: name, "on": f"{name}_tta", "off": f"{name}_no_tta"}[tta]


def run_one(dgss: str, store: Path, run_dir: Path, sources: list[str], targets: list[str], head: str, seed: int,
            options: list[str], key: str | None, threshold: str | None = None, tta: str | None = None
            ) -> dict[str, float]:
    """Fit (or resume, or reuse) one run and evaluate it (or reuse its scores); the seconds each took now.

    fit-head runs every time: on a finished run it checks that the run was trained with these options under
    today's defaults (refusing it otherwise), so a changed default never mixes old runs into a table."""
    timing_file = run_dir / "bench_timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    reused = (run_dir / "run.json").is_file() and "fit_s" in timing
    keyed = ["--key", key] if key else []
    fit_s = timed([dgss, "fit-head", "--source", ",".join(sources), "--store", str(store), "--out", str(run_dir),
                   "--seed", str(seed), "--resume", *keyed, *HEADS[head], *options])
    if not reused:
        timing = {"fit_s": fit_s}  # every evaluation of the old fit is stale
    report, eval_key = run_dir / report_name(threshold, tta), eval_name(threshold, tta)
    if not all((report / target / "scores.json").is_file() for target in targets) or eval_key not in timing:
        given = ([] if threshold is None else ["--threshold", threshold]) + {None: [], "on": ["--tta"], "off": ["--no-tta"]}[tta]
        timing[eval_key] = timed([dgss, "evaluate", "--run", str(run_dir), "--target", ",".join(targets),
                                  "--report", str(report), "--overlays", "2", "--overwrite", *given])
    timing_file.write_text(json.dumps(timing))
    return timing


def score_rows(variant: str, protocol: str, head: str, seed: int, run_dir: Path,
               timing: dict[str, float], threshold: str | None = None, tta: str | None = None
               ) -> list[dict[str, object]]:
    """One row per target of a finished, evaluated run."""
    sources, _ = PROTOCOLS[protocol]
    report = run_dir / report_name(threshold, tta)
    reports = [json.loads(path.read_text()) for path in sorted(report.glob("*/scores.json"))]  # one per target
    thresholds = reports[0]["thresholds"]
    chosen = thresholds if isinstance(thresholds, str) else thresholds[0]
    rows = []
    for target, result in ((target, result) for report in reports for target, result in report["targets"].items()):
        images = [values["dice"] for values in result["images"].values()]
        rows.append({
            "variant": variant, "protocol": protocol, "target": target, "unseen": target not in sources,
            "head": head, "seed": seed, **{name: round(result["pooled"][name], 4) for name in METRICS},
            "image_dice_mean": round(statistics.fmean(images), 4), "threshold": chosen,
            "n_images": result["n_images"], "fit_s": round(timing["fit_s"], 1),
            "eval_s": round(timing[eval_name(threshold, tta)], 1),
        })
    return rows


def merge_csv(path: Path, rows: list[dict[str, object]]) -> list[dict[str, str]]:
    """Replace the rows of the same (variant, protocol, target, head, seed) in `path`; return every row."""
    fresh = {tuple(str(row[name]) for name in IDENTITY) for row in rows}
    old = list(csv.DictReader(path.open())) if path.is_file() else []
    kept = [row for row in old if tuple(row[name] for name in IDENTITY) not in fresh]
    merged = kept + [{name: str(row[name]) for name in COLUMNS} for row in rows]
    merged.sort(key=lambda row: tuple(row[name] for name in IDENTITY))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(merged)
    return merged


def summarise(rows: list[dict[str, str]]) -> list[dict[str, object]]:
    """Mean and standard deviation over seeds per (variant, protocol, target, head)."""
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["variant"], row["protocol"], row["target"], row["head"]), []).append(row)
    summary = []
    for (variant, protocol, target, head), members in groups.items():
        entry: dict[str, object] = {"variant": variant, "protocol": protocol, "target": target, "head": head,
                                    "unseen": members[0]["unseen"] == "True", "seeds": len(members)}
        for name in ("dice", "auc_roc", "auc_pr", "image_dice_mean", "fit_s"):
            values = [float(member[name]) for member in members]
            entry[name] = statistics.fmean(values)
            entry[f"{name}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def markdown(summary: list[dict[str, object]]) -> str:
    """The summary as a markdown table: mean ± sd over seeds."""
    lines = ["| variant | protocol | target | head | seeds | Dice | AUC-ROC | AUC-PR | per-image Dice | fit s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary:
        target = row["target"] if row["unseen"] else f"{row['target']} (in domain)"
        cells = [f"{row[name]:.3f} ± {row[f'{name}_sd']:.3f}" for name in ("dice", "auc_roc", "auc_pr",
                                                                           "image_dice_mean")]
        lines.append(f"| {row['variant']} | {row['protocol']} | {target} | {row['head']} | {row['seeds']} | "
                     f"{' | '.join(cells)} | {row['fit_s']:.0f} |")
    return "\n".join(lines) + "\n"


def chart_path(csv_path: Path, variant: str) -> Path:
    """One chart per variant (all variants in one picture are too many bars to read)."""
    suffix = "" if variant == "default" else f"_{variant}"
    return csv_path.with_name(f"{csv_path.stem}{suffix}.png")


def chart(summary: list[dict[str, object]], variant: str, path: Path) -> None:
    """Grouped bars of Dice and AUC-ROC (mean, sd as error bars) per (protocol, target) of one variant, one bar
    per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = [row for row in summary if row["variant"] == variant]
    groups = sorted({(row["protocol"], row["target"]) for row in summary})
    heads = sorted({row["head"] for row in summary})
    by_key = {(row["protocol"], row["target"], row["head"]): row for row in summary}
    in_domain = {(row["protocol"], row["target"]) for row in summary if not row["unseen"]}
    figure, axes = plt.subplots(2, 1, figsize=(min(24.0, max(6.0, 1.2 * len(groups) * len(heads) / 2)), 7),
                                sharex=True)
    width = 0.8 / len(heads)
    colours = plt.get_cmap("tab10" if len(heads) <= 10 else "tab20")(range(len(heads)))  # one colour per bar
    for axis, metric, label in zip(axes, ("dice", "auc_roc"), ("Dice (pooled)", "AUC-ROC")):
        for offset, head in enumerate(heads):
            rows = [by_key.get((*group, head)) for group in groups]
            positions = [index + (offset - (len(heads) - 1) / 2) * width for index in range(len(groups))]
            axis.bar(positions, [row[metric] if row else 0 for row in rows], width,
                     yerr=[row[f"{metric}_sd"] if row else 0 for row in rows], label=head, capsize=2,
                     color=colours[offset])
        values = [row[metric] for row in summary]
        axis.set_ylabel(label)
        axis.set_ylim(max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.03))
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=min(len(heads), 7), fontsize=8)
    names = [f"{protocol}\n{target}" + ("\n(in domain)" if (protocol, target) in in_domain else "")
             for protocol, target in groups]
    axes[1].set_xticks(range(len(groups)), names, fontsize=8)
    figure.suptitle(f"Domain generalization, variant {variant}\nmean ± sd over seeds")  # two lines: long names fit
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="store holding DRIVE, STARE, CHASE_DB1 (one key)")
    parser.add_argument("--key", help="extraction key, where the datasets are cached under several")
    parser.add_argument("--variant", default="default", help="name of this setting (runs and rows are kept apart)")
    parser.add_argument("--options", default="", help="extra fit-head options for every head, e.g. '--epochs 20'")
    parser.add_argument("--runs-of", help="score the runs of this variant (no fitting of its own), e.g. with "
                        "--threshold")
    parser.add_argument("--threshold", help="dgss evaluate --threshold (a probability or otsu) instead of each "
                        "run's own")
    parser.add_argument("--tta", choices=("on", "off"), help="force test-time flips on or off (default: evaluate's, "
                        "on for runs trained with --flips; every row before 2026-12-07 was scored without)")
    parser.add_argument("--views", type=int, default=0, help="photometric views 1..K of each source as extra sources")
    parser.add_argument("--protocol", action="append", choices=sorted(PROTOCOLS), help="repeatable [all]")
    parser.add_argument("--head", action="append", choices=sorted(HEADS), help="repeatable [all]")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    parser.add_argument("--budget-minutes", type=float, default=None, help="start no run after this long")
    parser.add_argument("--runs", type=Path, default=Path("bench/runs/dg_protocol"))
    parser.add_argument("--csv", type=Path, default=Path("bench/results/dg_protocol.csv"))
    args = parser.parse_args()
    dgss = str(Path(sys.executable).with_name("dgss"))
    protocols, heads = args.protocol or list(PROTOCOLS), args.head or list(HEADS)
    start = time.perf_counter()
    print(f"cores: {os.cpu_count()}; variant {args.variant}; fit-head options: {args.options or '(defaults)'}")
    jobs = [(seed, protocol, head) for seed in map(int, args.seeds.split(",")) for protocol in protocols
            for head in heads]
    rows = []
    for seed, protocol, head in jobs:
        if args.budget_minutes is not None and time.perf_counter() - start > 60 * args.budget_minutes:
            print(f"budget of {args.budget_minutes} min spent: stopping before {protocol} {head} seed {seed}")
            break
        sources, targets = PROTOCOLS[protocol]
        sources = sources + [view for source in sources for view in view_names(source, args.views)]
        run_dir = args.runs / (args.runs_of or args.variant) / protocol / head / f"seed{seed}"
        if args.runs_of and not (run_dir / "run.json").is_file():
            print(f"{run_dir}: no finished run of variant {args.runs_of} to score; skipped")
            continue
        timing = run_one(dgss, args.store, run_dir, sources, targets, head, seed, shlex.split(args.options), args.key,
                         args.threshold, args.tta)
        rows += score_rows(args.variant, protocol, head, seed, run_dir, timing, args.threshold, args.tta)
        summary = summarise(merge_csv(args.csv, rows))
        args.csv.with_suffix(".md").write_text(markdown(summary))
        chart(summary, args.variant, chart_path(args.csv, args.variant))
    print(args.csv.with_suffix(".md").read_text() if args.csv.with_suffix(".md").is_file() else "no rows")
    print(f"bench wall time: {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
