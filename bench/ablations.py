"""The method's claims, measured: each ablation of DiffDGSSv2 against the default, on both protocols.

Every row is a T&S-FreqAgg head trained by `dgss fit-head` and scored by `dgss evaluate` as bench/dg_protocol.py
does (whose functions run, score, merge and tabulate here), on the protocols single-DRIVE and loo-* and three seeds:

    default           anchored features (f(x0, t)), Haar bands, FreqFusion, per-pixel time gate, one head
    ddim-fine         features of DDIM inversion along the fine path (`--mode ddim`, default --inversion-steps)
    noised-4          the mean of 4 noised draws (`--mode noised --draws 4`)
    raw-bilinear      raw maps without the Haar split (`--bands none`) fused by plain upsampling + add
    gate-mean         the plain mean of the per-timestep logits
    gate-single-tT    one timestep T; every cached timestep (or each of --single-candidates) is tried at the first
                      seed, and the best of them by the source validation Dice (never a target's) is run at the
                      other seeds too: "best single timestep"
    vote-10, vote-3   the per-pixel majority vote of 10 and of 3 independently seeded heads; member m of a run has
                      seed + m whatever the ensemble's size, so vote-3 is the first 3 members of vote-10's run
                      (its fit s is estimated as 3/10 of vote-10's), not a fit of its own

An extraction variant reads its own store entry, made with the default entry's config but for its mode or bands,
so every row differs from the default in one thing. --extract computes missing entries (`dgss extract`, resumable);
without it their commands are printed and their rows skipped. --targets scores fewer targets, and then extracts a
variant's entries for those targets and the sources' training split alone (how a costly mode is tried in a session).

Every row trains for 40 epochs (`--epochs 40`, before --options), fit-head's default when the table was begun;
the default is 80 since 2026-12-08, so a runs folder of the table never mixes the two.

CPU cost of the whole table, from the pieces measured on 2026-12-07 (one torch thread per process, 2 cores): a
one-head fit plus its evaluation takes 6-8 min on single-DRIVE and 11-12 per leave-one-out fold, so about 42 min per
seed over the four protocols. The five one-head variants at 3 seeds: about 10.5 h. vote-10: ten heads, about 21 h
(vote-3 costs only its evaluations). Single timesteps fit in 42 s, so their evaluations dominate: 8 candidates at
the first seed and the best at two more, about 1.5 h. The extra entries of DRIVE, STARE and CHASE_DB1 (108 images,
one thread, s per image): raw 11 (0.3 h), noised-4 43-52 (1.4 h), ddim 70-78 (2.2 h). About 37 h in all;
--budget-minutes runs it in pieces, and --targets tries a costly mode on fewer images. As run by 2026-12-08 (85 runs,
all but the votes on leave-one-out): 12.8 CPU-hours of fits and 1.6 of scoring.

Resumable and incremental like dg_protocol.py: finished runs are reused (fit-head checks each was trained with the
options asked for), a stopped fit-head resumes, work goes seed by seed, and --budget-minutes starts no step after
that long. Rows go to bench/results/ablations.csv (dg_protocol's columns); ablations.md holds the table against the
default (Dice and AUC mean ± sd over seeds, and the difference to the default) and ablations.png one bar per variant
for each protocol and target. Pieces run side by side each write their own --csv; `--merge PIECE.csv ...` then
merges them into --csv, with its table and chart, and runs nothing.

    .venv/bin/python bench/ablations.py --store /work/cache/v2.zarr --data-root ../shared/datasets --extract \\
        --budget-minutes 600
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from dg_protocol import IDENTITY, PROTOCOLS, chart, markdown, merge_csv, run_one, score_rows, summarise, timed

from dgss.extract.config import ExtractionConfig
from dgss.extract.features import DEFAULT_INVERSION_STEPS
from dgss.store import FeatureStore

DEFAULT = "default"
DATASETS = ("DRIVE", "STARE", "CHASE_DB1")
EXTRACTIONS = {  # extraction variant -> (config fields changed from the default entry's, `dgss extract` options)
    "anchored": ({}, []),
    "ddim": ({"mode": "ddim", "inversion_steps": DEFAULT_INVERSION_STEPS},
             ["--mode", "ddim", "--inversion-steps", str(DEFAULT_INVERSION_STEPS)]),
    "noised": ({"mode": "noised", "draws": 4}, ["--mode", "noised", "--draws", "4"]),
    "raw": ({"bands": "none"}, ["--bands", "none"]),
}
VARIANTS = {  # variant -> (extraction variant, fit-head options)
    DEFAULT: ("anchored", []),
    "ddim-fine": ("ddim", []),
    "noised-4": ("noised", []),
    "raw-bilinear": ("raw", ["--head-param", "fusion=bilinear"]),
    "gate-mean": ("anchored", ["--head-param", "gate=mean"]),
    "vote-10": ("anchored", ["--ensemble", "10"]),
    "vote-3": ("anchored", ["--ensemble", "3"]),
}
MEMBERS_OF = {"vote-3": ("vote-10", 3)}  # variant -> (the variant whose first members it is, how many)
SINGLE = "gate-single-t"
HEAD = "tsfreqagg"
TABLE_EPOCHS = ["--epochs", "40"]  # every row as first measured: fit-head's default until 2026-12-08 (now 80)


def single_variant(timestep: int) -> tuple[str, tuple[str, list[str]]]:
    """The variant of one timestep: gate=single on `--timesteps T`."""
    return f"{SINGLE}{timestep}", ("anchored", ["--head-param", "gate=single", "--timesteps", str(timestep)])


def variant_keys(store: FeatureStore, key: str | None) -> tuple[dict[str, str], dict[str, ExtractionConfig]]:
    """Per extraction variant, its key and config: the default entry (DRIVE's, under `key` or its only one) and
    its config with the variant's fields changed."""
    entry = store.entry(DATASETS[0], key)
    base = ExtractionConfig.from_dict(entry.config)
    configs = {name: dataclasses.replace(base, **changes) for name, (changes, _) in EXTRACTIONS.items()}
    keys = {name: config.key() for name, config in configs.items()}
    return {**keys, "anchored": entry.key}, configs


def image_needs(protocols: list[str], targets: set[str] | None) -> dict[str, str | None]:
    """Per dataset, what a variant's entry must hold for `protocols` scored on `targets` (None: all of theirs):
    None for every labelled image (a target), "training" for a source that is not scored here."""
    needs: dict[str, str | None] = {}
    for protocol in protocols:
        sources, scored = PROTOCOLS[protocol]
        needs.update((target, None) for target in scored if targets is None or target in targets)
    for protocol in protocols:
        needs.update((source, "training") for source in PROTOCOLS[protocol][0] if source not in needs)
    return needs


def extract_command(dgss: str, store: Path, dataset: str, config: ExtractionConfig, extraction: str,
                    data_root: Path | None, split: str | None = None) -> list[str]:
    """`dgss extract` for one dataset (its `split` alone, if given) that reproduces the default entry's config but
    for the variant's options."""
    command = [dgss, "extract", "--dataset", dataset, "--store", str(store), "--labelled-only",
               "--blocks", ",".join(config.blocks), "--timesteps", ",".join(map(str, config.timesteps)),
               "--input-size", str(config.input_size), "--canvas-size", str(config.canvas_size),
               "--tile-overlap", str(config.tile_overlap), "--mantissa-bits", str(config.mantissa_bits)]
    if config.canvas_field_deg is not None:
        command += ["--canvas-field-deg", str(config.canvas_field_deg)]
    if data_root is not None:
        command += ["--data-root", str(data_root)]
    if split is not None:
        command += ["--split", split]
    return command + EXTRACTIONS[extraction][1]


def cached(store: FeatureStore, key: str, default_key: str, needs: dict[str, str | None]) -> bool:
    """Whether every needed dataset has an entry under `key` with as many of the needed images done as the default
    entry."""
    def done(entry, split: str | None) -> int:
        return sum(1 for index in entry.done().nonzero()[0] if split is None or entry.splits[index] == split)

    for dataset, split in needs.items():
        if not store.has_entry(dataset, key):
            return False
        if done(store.entry(dataset, key), split) < done(store.entry(dataset, default_key), split):
            return False
    return True


def validation_dice(run_dir: Path) -> float | None:
    """A finished run's source validation Dice (mean over members of each one's best); None if unfinished."""
    record = run_dir / "run.json"
    if not record.is_file():
        return None
    selection = json.loads(record.read_text())["selection"]
    scores = [max(seen["dice"] for seen in member["history"]) for member in selection if member["history"]]
    return statistics.fmean(scores) if scores else None


def first_members(whole: Path, part: Path, members: int) -> bool:
    """Make `part` the run of `whole`'s first `members` heads (record cut down, head files copied, fit seconds
    estimated pro rata); False while `whole` is unfinished. Kept once made."""
    if (part / "run.json").is_file():
        return True
    if not (whole / "run.json").is_file():
        return False
    record = json.loads((whole / "run.json").read_text())
    total = len(record["head_files"])
    record["head_files"], record["selection"] = record["head_files"][:members], record["selection"][:members]
    record["training"]["ensemble"] = members
    part.mkdir(parents=True, exist_ok=True)
    for name in record["head_files"]:
        shutil.copyfile(whole / name, part / name)
    fit_s = json.loads((whole / "bench_timing.json").read_text())["fit_s"]
    (part / "bench_timing.json").write_text(json.dumps({"fit_s": fit_s * members / total}))
    (part / "run.json").write_text(json.dumps(record, indent=2))
    return True


def best_single(runs: Path, protocol: str, timesteps: list[int], seed: int) -> int | None:
    """The timestep whose single-timestep run at `seed` has the best source validation Dice; None until every
    candidate has finished (or there is none)."""
    scores = {step: validation_dice(runs / f"{SINGLE}{step}" / protocol / HEAD / f"seed{seed}") for step in timesteps}
    if not scores or any(score is None for score in scores.values()):
        return None
    return max(timesteps, key=lambda step: scores[step])


def against_default(summary: list[dict[str, object]], rows: list[dict[str, str]]) -> str:
    """One line per variant and protocol: unseen targets' Dice and AUC (mean ± sd), the Dice change from the
    default, and that change paired by seed (a seed fixes the validation images and the start for every variant,
    so the paired change is free of the spread they cause)."""
    base = {(row["protocol"], row["target"]): row for row in summary if row["variant"] == DEFAULT}
    lines = ["| variant | protocol | target | seeds | Dice | Δ Dice vs default | Δ paired by seed | AUC-ROC |",
             "|---|---|---|---|---|---|---|---|"]
    for row in sorted(summary, key=lambda row: (row["protocol"], row["target"], row["variant"] != DEFAULT,
                                                row["variant"])):
        if not row["unseen"]:
            continue
        reference = base.get((row["protocol"], row["target"]))
        change = f"{row['dice'] - reference['dice']:+.3f}" if reference and row["variant"] != DEFAULT else ""
        paired = paired_change(rows, str(row["variant"]), str(row["protocol"]), str(row["target"]))
        lines.append(f"| {row['variant']} | {row['protocol']} | {row['target']} | {row['seeds']} | "
                     f"{row['dice']:.3f} ± {row['dice_sd']:.3f} | {change} | {paired} | "
                     f"{row['auc_roc']:.3f} ± {row['auc_roc_sd']:.3f} |")
    return "\n".join(lines) + "\n"


def paired_change(rows: list[dict[str, str]], variant: str, protocol: str, target: str) -> str:
    """The variant's Dice minus the default's at each seed both ran: mean ± sd and how many seeds went up, e.g.
    ``+0.029 ± 0.018 (3 of 3 up)``; empty for the default or without a shared seed."""
    if variant == DEFAULT:
        return ""
    dice = {(row["variant"], row["seed"]): float(row["dice"]) for row in rows
            if row["protocol"] == protocol and row["target"] == target}
    changes = [value - dice[(DEFAULT, seed)] for (name, seed), value in sorted(dice.items())
               if name == variant and (DEFAULT, seed) in dice]
    if not changes:
        return ""
    spread = statistics.stdev(changes) if len(changes) > 1 else 0.0
    return (f"{statistics.fmean(changes):+.3f} ± {spread:.3f} "
            f"({sum(change > 0 for change in changes)} of {len(changes)} up)")


def plan(chosen: list[str], protocols: list[str], seeds: list[int], timesteps: list[int],
         runs: Path) -> Iterator[tuple[int, str, str, tuple[str, list[str]]]]:
    """(seed, protocol, variant, (extraction, fit-head options)) in run order, seed by seed. Every single timestep is
    a candidate at the first seed; later seeds run the best of them, looked up when their turn comes."""
    for seed in seeds:
        for protocol in protocols:
            variants = {name: VARIANTS[name] for name in chosen if name in VARIANTS}
            if "single" in chosen:
                best = best_single(runs, protocol, timesteps, seeds[0])
                steps = timesteps if seed == seeds[0] else [best] if best is not None else []
                variants.update(single_variant(step) for step in steps)
            for variant, spec in variants.items():
                yield seed, protocol, variant, spec


def single_notes(runs: Path, protocols: list[str], timesteps: list[int], seed: int) -> list[str]:
    """The best single timestep of each protocol whose candidates have all finished, for the markdown."""
    best = {protocol: best_single(runs, protocol, timesteps, seed) for protocol in protocols}
    return [f"- best single timestep for {protocol} (source validation Dice at seed {seed}): {step}"
            for protocol, step in best.items() if step is not None]


def write_results(csv_path: Path, rows: list[dict[str, object]], notes: list[str]) -> None:
    """Merge `rows` into the CSV; write the markdown (against the default, then every target) and the chart."""
    merged = merge_csv(csv_path, rows)
    if not merged:
        return
    summary = summarise(merged)
    text = "\n".join([*notes, "", against_default(summary, merged), "All targets, in domain too:", "",
                      markdown(summary)])
    csv_path.with_suffix(".md").write_text(text)
    by_variant = [{**row, "head": row["variant"], "variant": "ablations"} for row in summary]  # one bar per variant
    chart(by_variant, "ablations", csv_path.with_suffix(".png"))


def merged_pieces(paths: list[Path]) -> list[dict[str, str]]:
    """The rows of pieces run side by side, each with its own CSV; a later piece's row replaces an earlier one's of
    the same variant, protocol, target, head and seed (a run scored again on more targets)."""
    rows = {}
    for path in paths:
        for row in csv.DictReader(path.open()):
            rows[tuple(row[name] for name in IDENTITY)] = row
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="store holding the default entry of DRIVE, STARE and CHASE_DB1 "
                        "(the variants' entries are added beside it); needed unless --merge")
    parser.add_argument("--key", help="the default entry's key, where the datasets are cached under several")
    parser.add_argument("--data-root", type=Path, help="for --extract: folder holding the datasets")
    parser.add_argument("--extract", action="store_true", help="extract the variants' missing entries first")
    parser.add_argument("--variant", action="append", help=f"repeatable [all: {', '.join(VARIANTS)}, "
                        f"{SINGLE}* (best single timestep)]; name {SINGLE}* as 'single'")
    parser.add_argument("--protocol", action="append", choices=sorted(PROTOCOLS), help="repeatable [all]")
    parser.add_argument("--targets", help="comma list: score only these targets; a variant's entries are then "
                        "extracted for them and for the sources alone (a source that is not scored: its training "
                        "split) [every target of the protocols]")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds; the first picks the single timestep")
    parser.add_argument("--single-candidates", help="comma list: the timesteps tried for the best single one "
                        "[every cached timestep]")
    parser.add_argument("--options", default="", help="extra fit-head options for every run, e.g. '--epochs 20'")
    parser.add_argument("--budget-minutes", type=float, default=None, help="start no step after this long")
    parser.add_argument("--runs", type=Path, default=Path("bench/runs/ablations"))
    parser.add_argument("--csv", type=Path, default=Path("bench/results/ablations.csv"))
    parser.add_argument("--merge", type=Path, nargs="+", help="pieces' CSVs to merge into --csv (later ones win); "
                        "nothing runs")
    args = parser.parse_args()
    if args.merge:
        steps = sorted(int(path.name.removeprefix(SINGLE)) for path in args.runs.glob(f"{SINGLE}*"))
        notes = single_notes(args.runs, args.protocol or list(PROTOCOLS), steps, int(args.seeds.split(",")[0]))
        write_results(args.csv, merged_pieces(args.merge), notes)
        print(args.csv.with_suffix(".md").read_text())
        return
    if args.store is None:
        parser.error("--store is required (unless --merge)")
    dgss = str(Path(sys.executable).with_name("dgss"))
    start = time.perf_counter()

    def over_budget() -> bool:
        return args.budget_minutes is not None and time.perf_counter() - start > 60 * args.budget_minutes

    chosen = args.variant or [*VARIANTS, "single"]
    protocols, seeds = args.protocol or list(PROTOCOLS), [int(seed) for seed in args.seeds.split(",")]
    store = FeatureStore(args.store, create=False)
    keys, configs = variant_keys(store, args.key)
    scored = set(args.targets.split(",")) if args.targets else None
    needs = image_needs(protocols, scored)
    needed = {VARIANTS[name][0] for name in chosen if name in VARIANTS} | ({"anchored"} if "single" in chosen else set())
    for extraction in sorted(needed):
        if cached(store, keys[extraction], keys["anchored"], needs) or not args.extract or over_budget():
            continue
        for dataset, split in needs.items():
            timed(extract_command(dgss, args.store, dataset, configs[extraction], extraction, args.data_root, split))
    store = FeatureStore(args.store, create=False)  # the entries just made
    missing = sorted(extraction for extraction in needed
                     if not cached(store, keys[extraction], keys["anchored"], needs))
    for extraction in missing:
        print(f"entry {extraction} (key {keys[extraction]}) is not cached; its rows are skipped. Extract it with:")
        for dataset, split in needs.items():
            print("  " + shlex.join(extract_command("dgss", args.store, dataset, configs[extraction], extraction,
                                                    args.data_root, split)))
    print(f"cores: {os.cpu_count()}; variants {', '.join(chosen)}; keys {keys}")
    timesteps = list(configs["anchored"].timesteps)
    if args.single_candidates:
        candidates = [int(step) for step in args.single_candidates.split(",")]
        if not set(candidates) <= set(timesteps):
            raise SystemExit(f"--single-candidates {args.single_candidates}: the cached timesteps are "
                             f"{','.join(map(str, timesteps))}; name some of those")
        timesteps = candidates
    rows: list[dict[str, object]] = []
    for seed, protocol, variant, (extraction, options) in plan(chosen, protocols, seeds, timesteps, args.runs):
        if extraction in missing:
            continue
        if over_budget():
            print(f"budget of {args.budget_minutes} min spent: stopping before {variant} {protocol} seed {seed}")
            break
        sources, targets = PROTOCOLS[protocol]
        targets = [target for target in targets if scored is None or target in scored]
        if not targets:
            continue
        run_dir = args.runs / variant / protocol / HEAD / f"seed{seed}"
        if variant in MEMBERS_OF:
            whole, members = MEMBERS_OF[variant]
            if not first_members(args.runs / whole / protocol / HEAD / f"seed{seed}", run_dir, members):
                print(f"{variant} {protocol} seed {seed}: waits for {whole}'s run, whose first {members} heads it is")
                continue
        fit_options = TABLE_EPOCHS + options + shlex.split(args.options)
        timing = run_one(dgss, args.store, run_dir, sources, targets, HEAD, seed, fit_options, keys[extraction])
        rows += score_rows(variant, protocol, HEAD, seed, run_dir, timing)
        notes = single_notes(args.runs, protocols, timesteps, seeds[0]) if "single" in chosen else []
        write_results(args.csv, rows, notes)
    print(args.csv.with_suffix(".md").read_text() if args.csv.with_suffix(".md").is_file() else "no rows")
    print(f"bench wall time: {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
