"""Learning curves on unseen cameras: pooled Dice and AUC-ROC of single-DRIVE runs against the training windows
they saw, read from the DG bench's rows (no fitting here).

Each point is a finished `bench/dg_protocol.py` or `bench/ablations.py` variant whose windows seen are known from
its options. The strong U-Net's points are one recipe stopped at 1/8, 1/4, 1/2 and all of its 2,400 steps (each
with its own cosine rate). T&S-FreqAgg has two curves from the fit-head defaults (1,280 windows: 16 training images,
8 steps of 2 x 2 windows, 40 epochs, fit-head's default until 2026-12-08), each changing one thing: the epochs
alone (80, now the default, and 160), and 4x the windows per image with flips and a cosine rate (seed 0 only, so
its start is the seed-0 default). The picture shows where each head's curve flattens.

    .venv/bin/python bench/learning_curve.py --csv bench/results/dg_strong.csv --csv bench/results/ablations.csv \
        --csv bench/results/dg_curve.csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

EPOCHS = "T&S-FreqAgg, epochs 40 / 80 / 160"
WINDOWS_FLIPS = "T&S-FreqAgg (seed 0), windows x4 + flips + cosine"
POINTS = {  # (curve, variant) -> (head, windows seen by one single-DRIVE fit, the seeds read: None for all)
    ("strong U-Net", "unet-reference-e60"): ("unet", 2_400, None),
    ("strong U-Net", "unet-reference-e120"): ("unet", 4_800, None),
    ("strong U-Net", "unet-reference-e240"): ("unet", 9_600, None),
    ("strong U-Net", "unet-reference"): ("unet", 19_200, None),
    (EPOCHS, "default"): ("tsfreqagg", 1_280, None),
    (EPOCHS, "ts-e80"): ("tsfreqagg", 2_560, None),
    (EPOCHS, "ts-e160"): ("tsfreqagg", 5_120, None),
    (WINDOWS_FLIPS, "default"): ("tsfreqagg", 1_280, {"0"}),
    (WINDOWS_FLIPS, "ts-w8-flips-cos"): ("tsfreqagg", 5_120, {"0"}),
}
TARGETS = ("STARE", "CHASE_DB1", "DRIVE")
TICKS = (1_280, 2_560, 5_120, 9_600, 19_200)  # 2,400 and 4,800 would print over 2,560 and 5,120


def points(paths: list[Path]) -> dict[tuple[str, str], list[tuple[int, float, float, int]]]:
    """(curve, target) -> sorted (windows, mean Dice, mean AUC, seeds) over the single-DRIVE rows."""
    rows = [row for path in paths for row in csv.DictReader(path.open()) if row["protocol"] == "single-DRIVE"]
    curves: dict[tuple[str, str], list[tuple[int, float, float, int]]] = {}
    for (label, variant), (head, windows, seeds) in POINTS.items():
        for target in TARGETS:
            chosen = [row for row in rows if (row["variant"], row["head"], row["target"]) == (variant, head, target)
                      and (seeds is None or row["seed"] in seeds)]
            if chosen:
                dice = statistics.fmean(float(row["dice"]) for row in chosen)
                auc = statistics.fmean(float(row["auc_roc"]) for row in chosen)
                curves.setdefault((label, target), []).append((windows, dice, auc, len(chosen)))
    return {key: sorted(values) for key, values in curves.items()}


def chart(curves: dict[tuple[str, str], list[tuple[int, float, float, int]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 5.4))
    styles = {"strong U-Net": "o-", EPOCHS: "s--", WINDOWS_FLIPS: "^:"}
    colours = dict(zip(TARGETS, ("tab:blue", "tab:orange", "tab:green")))
    for (label, target), values in sorted(curves.items()):
        windows = [value[0] for value in values]
        for axis, column in zip(axes, (1, 2)):
            axis.plot(windows, [value[column] for value in values], styles[label], color=colours[target],
                      label=f"{label}, {target}" + (" (in domain)" if target == "DRIVE" else ""))
    for axis, name in zip(axes, ("Dice (pooled)", "AUC-ROC")):
        axis.set_xscale("log")
        axis.set_xticks(TICKS, [f"{tick:,}" for tick in TICKS], fontsize=7)
        axis.minorticks_off()
        axis.set_xlabel("training windows seen (128 px)")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7)
    figure.suptitle("Trained on DRIVE only: scores against training windows")
    figure.tight_layout(rect=(0, 0.14, 1, 1))  # the legend below the axes, clear of the curves
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, action="append", required=True, help="DG bench rows, repeatable")
    parser.add_argument("--out", type=Path, default=Path("bench/results/learning_curve.png"))
    args = parser.parse_args()
    curves = points(args.csv)
    for (label, target), values in sorted(curves.items()):
        line = ", ".join(f"{windows:,}: {dice:.3f} / {auc:.3f} ({seeds} seed{'s' * (seeds > 1)})"
                         for windows, dice, auc, seeds in values)
        print(f"{label:40} {target:9} {line}")
    chart(curves, args.out)
    print(f"chart: {args.out}")


if __name__ == "__main__":
    main()
