"""`dgss train-diffusion`: train the diffusion backbone that `dgss extract --model` reads features from."""

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from dgss.pipelines.app import app
from dgss.pipelines.options import comma_list, option
from dgss.settings import LRSchedule, PredictionType, Setting


class Preset(StrEnum):
    """The names of `dgss.pretrain.presets.PRESETS` (spelled here so that `--help` does not import diffusers)."""

    tiny = "tiny"
    small = "small"
    fundus_pool_v2 = "fundus-pool-v2"
    adm = "adm"


LR = Setting(name="lr", kind=float, default=None, low=0, low_open=True, optional=True,
             help="AdamW learning rate (default: the preset's).")
TIME_BUDGET = Setting(name="time_budget", kind=float, default=None, low=0, optional=True,
                      help="Minutes: stop after the step that spends them, with a checkpoint and the model saved "
                           "there; --resume continues.")


def _finite_zoom(zoom: tuple[float, float]) -> tuple[float, float]:
    """--zoom as given; a usage error for NaN or infinity (the range check lets them through)."""
    if not all(math.isfinite(value) for value in zoom):
        raise typer.BadParameter(f"{zoom[0]:g} {zoom[1]:g}: give two finite zoom factors, e.g. --zoom 1 1.5")
    return zoom


@app.command("train-diffusion")
def train_diffusion(
    source: Annotated[
        str, typer.Option(help="Comma list of dataset names and/or flat folders of unlabelled images.")
    ],
    out: Annotated[
        Path, typer.Option(help="Output folder: a diffusers model folder plus checkpoints, samples and a model card.")
    ],
    preset: Annotated[
        Preset, typer.Option(help="tiny: minutes on CPU; small: hours on CPU; fundus-pool-v2: the shipped default "
                             "backbone's recipe (hours on CPU); adm: the paper's 512 px model, GPU.")
    ] = Preset.tiny,
    resolution: Annotated[
        int | None, typer.Option(min=8, help="Training crop size in pixels (default: the preset's).")
    ] = None,
    image_size: Annotated[int | None, typer.Option(min=8, help="Side of the FOV square crops are cut from: the scale "
                                                   "features will be extracted at (default: the preset's).")] = None,
    steps: Annotated[int | None, typer.Option(
        min=1, help="Total optimizer steps; with --resume the new total (default: the preset's).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per step (default: the preset's).")] = None,
    lr: Annotated[float | None, option(LR)] = None,
    lr_schedule: Annotated[LRSchedule | None, typer.Option(
        help="constant, or cosine: from --lr down to 0 at the last of --steps (resume it with the same --steps); "
        "default: the preset's."
    )] = None,
    lr_warmup_steps: Annotated[int, typer.Option(
        min=0, help="Steps of a linear ramp up to --lr before the schedule (default: none).")] = 0,
    lr_cooldown_steps: Annotated[int, typer.Option(
        min=0, help="Constant schedule: the last N of --steps fall linearly to 0; a constant run resumes with a "
        "cool-down that starts after its trained steps (default: none).")] = 0,
    zoom: Annotated[tuple[float, float], typer.Option(
        min=0.01, metavar="LOW HIGH", callback=_finite_zoom, help="Scale augmentation: each crop cut at a zoom drawn "
        "log-uniformly from LOW..HIGH (above 1 vessels look wider, as through a narrower-field camera; default: 1 1, "
        "none).")
    ] = (1.0, 1.0),
    photometric: Annotated[bool, typer.Option(
        help="Photometric augmentation: each crop re-rendered as another camera might show it (gamma, contrast, "
        "colour cast, blur, noise inside its FOV).")] = False,
    augment_from_step: Annotated[int, typer.Option(
        min=0, help="The first step --zoom and --photometric apply to: a finished run resumes with them after its "
        "trained steps.")] = 0,
    prediction_type: Annotated[
        PredictionType | None, typer.Option(help="Network target: sample (x0, as in the paper), epsilon or "
                                            "v_prediction (default: the preset's).")
    ] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        min=1, help="Checkpoint, model, samples and card every K steps (default: the preset's).")] = None,
    sample_count: Annotated[int | None, typer.Option(
        min=1, help="Samples drawn at each checkpoint, shown beside as many real crops (default: 8).")] = None,
    sample_steps: Annotated[int | None, typer.Option(
        min=1, help="Ancestral (DDPM) steps per sample; fewer are faster, flatter and blurrier (default: 250).")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the checkpoint in OUT/checkpoints (a copied OUT too, on any machine).")
    ] = False,
    time_budget: Annotated[float | None, option(TIME_BUDGET, metavar="MINUTES")] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the initial weights and of every step's data and noise.")
    ] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N (CUDA trains in bf16 autocast).")] = "cpu",
    data_root: Annotated[
        Path | None, typer.Option(help="Folder holding the datasets (default: $DGSS_DATA_ROOT, else ./data).")
    ] = None,
) -> None:
    """Train an unconditional pixel-space DDPM (UNet2DModel, cosine schedule, EMA) on unlabelled fundus images."""
    # Imported here so that `dgss --help` and the other commands do not pay for importing torch and diffusers.
    from dgss.pretrain.presets import BackboneTrainingConfig
    from dgss.pretrain.training import train_backbone

    config = BackboneTrainingConfig.from_preset(
        preset.value,
        resolution=resolution,
        image_size=image_size,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=None if lr_schedule is None else lr_schedule.value,
        lr_warmup_steps=lr_warmup_steps,
        lr_cooldown_steps=lr_cooldown_steps,
        zoom_range=zoom,
        photometric=photometric,
        augment_from_step=augment_from_step,
        prediction_type=None if prediction_type is None else prediction_type.value,
        checkpoint_every=checkpoint_every,
        sample_count=sample_count,
        sample_steps=sample_steps,
        seed=seed,
        device=device,
    )
    sources = list(comma_list(source, "--source"))
    time_budget_s = None if time_budget is None else 60 * time_budget
    saved = train_backbone(config, sources, out, resume=resume, data_root=data_root, time_budget_s=time_budget_s)
    typer.echo(f"model saved to {saved} (load it with `dgss extract --model {saved}`)")
