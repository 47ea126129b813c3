"""Learning curves on unseen cameras: pooled Dice and AUC-ROC of single-DRIVE runs against the training windows
they saw, read from the DG bench's rows (no fitting here).

Each point is a finished `bench/dg_protocol.py` variant whose windows seen are known from its options; the strong
U-Net's points are one recipe stopped at 1/8, 1/4, 1/2 and all of its 2,400 steps (each with its own cosine rate),
T&S-FreqAgg's are the fit-head defaults (1,280 windows: 16 training images, 8 steps of 2 x 2 windows, 40 epochs) and
4x the windows per image (with flips and a cosine rate). The picture shows where each head's curve flattens.

    .venv/bin/python bench/learning_curve.py --csv bench/results/dg_strong.csv --csv bench/results/dg_backbone_v2.csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

WINDOWS = {  # (head label, variant) -> windows seen by one single-DRIVE fit
    ("strong U-Net", "unet-reference-e60"): 2_400,
    ("strong U-Net", "unet-reference-e120"): 4_800,
    ("strong U-Net", "unet-reference-e240"): 9_600,
    ("strong U-Net", "unet-reference"): 19_200,
    ("T&S-FreqAgg", "fundus-pool-v2"): 1_280,
    ("T&S-FreqAgg", "ts-w8-flips-cos"): 5_120,
}
TARGETS = ("STARE", "CHASE_DB1", "DRIVE")
TICKS = (1_280, 2_400, 4_800, 9_600, 19_200)  # 5,120 would print over 4,800


def points(paths: list[Path]) -> dict[tuple[str, str], list[tuple[int, float, float, int]]]:
    """(head label, target) -> sorted (windows, mean Dice, mean AUC, seeds) over the single-DRIVE rows."""
    rows = [row for path in paths for row in csv.DictReader(path.open()) if row["protocol"] == "single-DRIVE"]
    curves: dict[tuple[str, str], list[tuple[int, float, float, int]]] = {}
    for (label, variant), windows in WINDOWS.items():
        for target in TARGETS:
            chosen = [row for row in rows if row["variant"] == variant and row["target"] == target]
            if chosen:
                dice = statistics.fmean(float(row["dice"]) for row in chosen)
                auc = statistics.fmean(float(row["auc_roc"]) for row in chosen)
                curves.setdefault((label, target), []).append((windows, dice, auc, len(chosen)))
    return {key: sorted(values) for key, values in curves.items()}


def chart(curves: dict[tuple[str, str], list[tuple[int, float, float, int]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"strong U-Net": "o-", "T&S-FreqAgg": "s--"}
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
    axes[0].legend(fontsize=7)
    figure.suptitle("Trained on DRIVE only: scores against training windows")
    figure.tight_layout()
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
        print(f"{label:13} {target:9} {line}")
    chart(curves, args.out)
    print(f"chart: {args.out}")


if __name__ == "__main__":
    main()
