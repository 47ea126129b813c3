"""How faithful each feature mode is: how far an image's cached features move under a photometric view, relative to
how far they move between different images. The method's claim: anchored features f(x0, t) move least, noised ones
are distorted by their random draws, DDIM-inverted ones blurred by the error the inversion accumulates.

Per mode, block and timestep, over the first --images training images of --dataset and their view --view
(``DATASET+photoK``: gamma, contrast, colour cast, blur and noise; dgss.datasets.photometric):

    ratio = mean_i ||f(view_i) - f(image_i)|| / mean_{i<j} ||f(image_i) - f(image_j)||

on the cached features read as float32, the norm taken over band, channel, y and x (the Haar split is orthonormal,
so this is the norm of the raw map's difference, up to the cache's rounding). DiffDGSSv2's claim predicts that the
anchored features move least: a low ratio means a camera change moves an image's features little next to what
tells images apart.

The modes: ``anchored`` (f(x0, t)), ``ddim`` (inversion along the fine path, --inversion-steps) and ``noised`` (the
mean of --draws draws). dgss seeds the noise of every image alike, so an image and its view share their draws; two
more rows show what fresh draws do: ``noised, fresh draws`` compares the view drawn with seed 1 to the image drawn
with seed 0, ``noised, other draws`` the image itself drawn with seed 1 and with seed 0 (noise alone, no view).

The script extracts what it reads, one store entry per (dataset, mode), through the Python API of `dgss extract`
(resumable: images already in the store are skipped); --print-only prints the equivalent commands and stops.

    .venv/bin/python bench/faithfulness.py --store /tmp/faith.zarr --data-root ../shared/datasets --images 3

Writes bench/results/faithfulness.csv (one row per comparison, block and timestep) and .md (the ratio per block and
timestep, one column per comparison, with the settings).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgss.backbone.loading import load_backbone
from dgss.backbone.shipped import resolve_model
from dgss.datasets import view_names
from dgss.extract.config import default_timesteps
from dgss.extract.features import DEFAULT_INVERSION_STEPS
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore
from dgss.store.schema import feature_array

COLUMNS = ("comparison", "block", "timestep", "view_distance", "between_distance", "ratio", "images")


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a dataset extracted with some mode options."""

    dataset: str
    options: tuple[tuple[str, object], ...]

    def request(self, args: argparse.Namespace, timesteps: tuple[int, ...]) -> ExtractionRequest:
        return ExtractionRequest(dataset=self.dataset, store=args.store, model=args.model, data_root=args.data_root,
                                 timesteps=timesteps, split="training", limit=args.images, **dict(self.options))

    def command(self, args: argparse.Namespace, timesteps: tuple[int, ...]) -> str:
        options = [f"--{name.replace('_', '-')} {value}" for name, value in self.options]
        root = f" --data-root {args.data_root}" if args.data_root else ""
        return (f"dgss extract --dataset {self.dataset} --store {args.store}{root} --split training "
                f"--limit {args.images} --timesteps {','.join(map(str, timesteps))} {' '.join(options)}").strip()


@dataclass(frozen=True)
class Comparison:
    """How far `moved`'s features lie from `reference`'s, image by image, next to the spread between images of
    `reference`."""

    name: str
    reference: Side
    moved: Side


def comparisons(dataset: str, view: int, draws: int, inversion_steps: int) -> list[Comparison]:
    """The rows of the measure: each mode with the view, then the two fresh-draw rows of noised."""
    viewed = view_names(dataset, view)[-1]
    noised = (("mode", "noised"), ("draws", draws), ("seed", 0))
    reseeded = (("mode", "noised"), ("draws", draws), ("seed", 1))
    modes = {
        "anchored": (("mode", "anchored"),),
        f"ddim ({inversion_steps} steps)": (("mode", "ddim"), ("inversion_steps", inversion_steps)),
        f"noised ({draws} draws)": noised,
    }
    rows = [Comparison(name, Side(dataset, options), Side(viewed, options)) for name, options in modes.items()]
    rows.append(Comparison(f"noised ({draws} draws), fresh draws", Side(dataset, noised), Side(viewed, reseeded)))
    rows.append(Comparison(f"noised ({draws} draws), other draws, no view", Side(dataset, noised),
                           Side(dataset, reseeded)))
    return rows


def block_features(entry, block: str, indices: list[int]) -> np.ndarray:
    """(image, timestep, values) float32 features of `block` for the images at `indices`."""
    return np.stack([entry.read(feature_array(block), index).astype(np.float32).reshape(
        entry.array_specs[feature_array(block)].shape[0], -1) for index in indices])


def distances(reference: np.ndarray, moved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per timestep: the mean distance of each image to its moved self, and the mean distance between two images.

    Parameters
    ----------
    reference, moved : (image, timestep, values) arrays, images paired by position
    """
    view = np.linalg.norm(moved - reference, axis=2).mean(axis=0)
    pairs = itertools.combinations(range(len(reference)), 2)
    between = np.mean([np.linalg.norm(reference[i] - reference[j], axis=1) for i, j in pairs], axis=0)
    return view, between


def measure(store: FeatureStore, comparison: Comparison, keys: dict[Side, str]) -> list[dict[str, object]]:
    """Rows of one comparison: one per block and timestep, on the images both sides hold."""
    reference = store.entry(comparison.reference.dataset, keys[comparison.reference])
    moved = store.entry(comparison.moved.dataset, keys[comparison.moved])
    done_moved = {moved.image_ids[index]: index for index in np.flatnonzero(moved.done())}
    ids = [image_id for index, image_id in enumerate(reference.image_ids)
           if reference.done()[index] and image_id in done_moved]
    if len(ids) < 2:
        raise SystemExit(f"{comparison.name}: {len(ids)} image(s) done on both sides; the spread needs 2")
    reference_indices = [reference.image_ids.index(image_id) for image_id in ids]
    moved_indices = [done_moved[image_id] for image_id in ids]
    rows = []
    for block in (info["name"] for info in reference.attrs["blocks"]):
        view, between = distances(block_features(reference, block, reference_indices),
                                  block_features(moved, block, moved_indices))
        for timestep, near, far in zip(reference.coords["timestep"], view, between):
            rows.append({"comparison": comparison.name, "block": block, "timestep": timestep,
                         "view_distance": f"{near:.4g}", "between_distance": f"{far:.4g}",
                         "ratio": f"{near / far:.4f}", "images": len(ids)})
    return rows


def markdown(rows: list[dict[str, object]], settings: str) -> str:
    """The ratio per (block, timestep), one column per comparison, and its mean over them."""
    names = list(dict.fromkeys(str(row["comparison"]) for row in rows))
    cells = {(row["block"], row["timestep"], row["comparison"]): float(row["ratio"]) for row in rows}
    places = list(dict.fromkeys((row["block"], row["timestep"]) for row in rows))
    lines = [settings, "", "| block | timestep | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for block, timestep in places:
        values = [cells.get((block, timestep, name)) for name in names]
        lines.append(f"| {block} | {timestep} | " + " | ".join("" if v is None else f"{v:.3f}" for v in values) + " |")
    means = [np.mean([cells[(*place, name)] for place in places if (*place, name) in cells]) for name in names]
    lines.append("| **mean** | | " + " | ".join(f"**{value:.3f}**" for value in means) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="store to extract into and read (a scratch store is fine)")
    parser.add_argument("--data-root", help="folder holding DATASET/ (else $DGSS_DATA_ROOT)")
    parser.add_argument("--model", default="", help="backbone (default: the shipped one)")
    parser.add_argument("--dataset", default="DRIVE")
    parser.add_argument("--images", type=int, default=3, help="first N training images")
    parser.add_argument("--view", type=int, default=1, help="photometric view K (DATASET+photoK)")
    parser.add_argument("--timesteps", help="comma list (default: the four latest of the default set)")
    parser.add_argument("--draws", type=int, default=4, help="noise draws averaged (mode noised)")
    parser.add_argument("--inversion-steps", type=int, default=DEFAULT_INVERSION_STEPS, help="mode ddim")
    parser.add_argument("--modes", default="anchored,ddim,noised", help="comma list: the modes to measure")
    parser.add_argument("--print-only", action="store_true", help="print the extraction commands and stop")
    parser.add_argument("--csv", type=Path, default=Path("bench/results/faithfulness.csv"))
    args = parser.parse_args()
    if args.timesteps:
        timesteps = tuple(int(step) for step in args.timesteps.split(","))
    else:
        timesteps = default_timesteps(load_backbone(resolve_model(args.model)).num_train_timesteps)[-4:]
    modes = set(args.modes.split(","))
    rows_to_measure = [row for row in comparisons(args.dataset, args.view, args.draws, args.inversion_steps)
                       if dict(row.reference.options)["mode"] in modes]
    sides = list(dict.fromkeys(side for row in rows_to_measure for side in (row.reference, row.moved)))
    if args.print_only:
        print("\n".join(side.command(args, timesteps) for side in sides))
        return
    keys, seconds = {}, {}
    for side in sides:
        start = time.perf_counter()
        summary = run_extraction(side.request(args, timesteps))
        keys[side], seconds[side] = summary.key, time.perf_counter() - start
        print(f"{side.dataset} {dict(side.options)}: key {summary.key}, {summary.computed} extracted "
              f"({seconds[side]:.0f} s)", flush=True)
    store = FeatureStore(args.store, create=False)
    rows = [row for comparison in rows_to_measure for row in measure(store, comparison, keys)]
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    settings = (f"Faithfulness ratio (view distance / between-image distance; lower: features move less under a "
                f"camera change), modes {args.modes}, {args.dataset} training images 1-{args.images}, view "
                f"{args.view}, timesteps "
                f"{', '.join(map(str, timesteps))}, {args.draws} noise draws, {args.inversion_steps} DDIM inversion "
                f"steps, backbone {args.model or 'default'}; commit {commit}, {time.strftime('%Y-%m-%d')}. Command: "
                f"`{shlex.join(['bench/faithfulness.py', *sys.argv[1:]])}`")
    args.csv.with_suffix(".md").write_text(markdown(rows, settings))
    print(args.csv.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
