"""Train a backbone dgss can ship, on the unlabelled fundus pool only, in resumable pieces (run by hand).

    OMP_NUM_THREADS=1 python bench/train_shipped_backbone.py --pool ../shared/pretrain/FUNDUS-POOL \\
        --name fundus-pool-v2 --time-budget-minutes 120

trains into bench/runs/fundus-pool-v2/ (or --out) until the budget is spent, then stops with a checkpoint and the
model, samples beside real crops and card at that step. The same command continues from the folder's
`checkpoints/latest.pt`, on this machine or another (--pool may lie elsewhere there, it is recognised by its
files). That checkpoint and `training.json` are all a run needs to continue; bench/runs/ is outside git (a run
folder is kept locally), so copy those two files (about 47 MB) to continue the run on another machine. When
MODEL_CARD.md's samples and loss curve look right, `--ship` copies the model into
backbone/models/<name>; changing `dgss.backbone.shipped.DEFAULT_BACKBONE` to that name makes it the default.

One piece as a prepared GPU script, for a machine that allows 10 minutes per command:

    python bench/train_shipped_backbone.py --pool POOL --name fundus-pool-v2 --device cuda --time-budget-minutes 8

The budget counts from the start of training, decoding the pool included (measured for this recipe on a shared
2-core CPU: 27 ms per photo, 75 s for all 2,755 before step 0 of a fresh run); after it come one checkpoint and the
outputs (8 samples of 250 DDPM steps: about 1.5-2 min on that CPU, seconds on a GPU) and before it the imports, so 8
minutes leave a margin under 10. What must come back is the run folder, about 60 MB, 47 MB of it the checkpoint;
where returned files are limited in size (16 MiB each, say), pack it in parts with
`tar -C bench/runs -cf - NAME | split -b 15m - OUT/NAME.tar.` and unpack with `cat NAME.tar.* | tar -x -C bench/runs`.
A piece on CUDA (bf16 autocast) continues a CPU run exactly in its data and noise, not bit for bit in arithmetic.

The recipe is fundus-pool-v1's unless `--recipe NAME` names another candidate of bench/backbone_recipes.py (the
table bench/backbone_sweep.py compares at equal CPU time): train the sweep's winner long with

    OMP_NUM_THREADS=1 python bench/train_shipped_backbone.py --pool POOL --name fundus-pool-v2 --recipe NAME \
        --steps 20000 --time-budget-minutes 120

(a cosine recipe decays over --steps: pass the same --steps to every piece). A finished run can go on with a
cool-down (`--cooldown-steps N`) or with augmentation (`--zoom LOW HIGH`, `--photometric`;
`--augment-from-step S`, S its last step) in a copy of its folder. No evaluation dataset is read.
"""

import argparse
from pathlib import Path

from backbone_recipes import BASELINE, CANDIDATES, recipe  # bench/ is on sys.path when a bench script runs
from dgss.backbone.shipped import ship_backbone
from dgss.pretrain.outputs import MODEL_CARD, TRAINING_FILE
from dgss.pretrain.presets import BackboneTrainingConfig
from dgss.pretrain.training import train_backbone

RUNS_DIR = Path(__file__).resolve().parent / "runs"
SWEEP_TABLE = Path(__file__).resolve().parent / "results" / "backbone_sweep.md"
# Checkpoint and card: 8 samples of 250 DDPM steps cost 1.5-2 min on one CPU thread, about 8% of 1000 steps.
RUN_SETTINGS = dict(checkpoint_every=1000)


def add_recipe_choice(card: Path, name: str) -> None:
    """Say in the model card which recipe this is and what it was chosen against: the sweep's table, when there is
    one (the card is rewritten at every checkpoint, so this is added after each piece)."""
    section = [f"## Recipe: `{name}` of bench/backbone_recipes.py ({CANDIDATES[name].change})"]
    if SWEEP_TABLE.is_file():
        section += ["Chosen from bench/backbone_sweep.py's comparison at equal CPU time, scored by the linear probe:",
                    "", SWEEP_TABLE.read_text().strip()]
    card.write_text(card.read_text().rstrip() + "\n\n" + "\n".join(section) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, required=True, help="flat folder of unlabelled fundus photos")
    parser.add_argument("--name", default="fundus-pool-v2", help="the backbone's name: run folder and shipped folder")
    parser.add_argument("--out", type=Path, help="run folder (default: bench/runs/NAME)")
    parser.add_argument("--recipe", choices=list(CANDIDATES), default=BASELINE,
                        help=f"a recipe of bench/backbone_recipes.py (default: {BASELINE}, fundus-pool-v1's)")
    parser.add_argument("--steps", type=int, default=20000, help="total steps of the run (default: 20000)")
    parser.add_argument("--cooldown-steps", type=int, default=0,
                        help="the last N of --steps decay the rate linearly to 0 (a constant recipe only)")
    parser.add_argument("--zoom", type=float, nargs=2, default=(1.0, 1.0), metavar=("LOW", "HIGH"),
                        help="scale augmentation: crops cut at a zoom drawn log-uniformly in LOW..HIGH (default 1 1)")
    parser.add_argument("--photometric", action="store_true",
                        help="photometric augmentation: gamma, contrast, colour cast, blur and noise per crop")
    parser.add_argument("--augment-from-step", type=int, default=0,
                        help="the first step --zoom and --photometric apply to (a finished run resumes with them)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (CUDA trains in bf16 autocast)")
    parser.add_argument("--time-budget-minutes", type=float, help="stop this piece once it has trained so long")
    parser.add_argument("--ship", action="store_true", help="then copy the model to backbone/models/NAME")
    args = parser.parse_args()
    out = args.out or RUNS_DIR / args.name
    config = BackboneTrainingConfig.from_preset("tiny", steps=args.steps, device=args.device, **RUN_SETTINGS,
                                                lr_cooldown_steps=args.cooldown_steps, zoom_range=tuple(args.zoom),
                                                photometric=args.photometric,
                                                augment_from_step=args.augment_from_step, **recipe(args.recipe))
    budget_s = None if args.time_budget_minutes is None else 60 * args.time_budget_minutes
    resume = (out / TRAINING_FILE).is_file()
    train_backbone(config, [str(args.pool)], out, resume=resume, time_budget_s=budget_s)
    add_recipe_choice(out / MODEL_CARD, args.recipe)
    if args.ship:
        print(f"shipped as {ship_backbone(out, args.name)}; --model {args.name} loads it")


if __name__ == "__main__":
    main()
