"""`dgss fit-head`: train a segmentation head (or an ensemble) on cached features of one or more sources."""

from pathlib import Path
from typing import Annotated

import typer

from dgss.aggregate.recipes import RECIPES, Recipe, recipe_settings
from dgss.aggregate.settings import MEMORY_GIB, BandSelection, HeadName, TrainingPhases
from dgss.aggregate.settings import TrainingSettings as Training
from dgss.errors import ModelError
from dgss.pipelines.app import DEFAULT_STORE, STORE_HELP, app
from dgss.pipelines.options import ADVANCED, comma_list, given, option
from dgss.settings import LRSchedule


@app.command("fit-head")
def fit_head_command(
    source: Annotated[str, typer.Option(help="Comma list of cached source datasets, e.g. DRIVE,STARE (their "
                                             "training split where they have one, else all images).")],
    out: Annotated[Path, typer.Option(help="Run folder to write (heads, run.json, loss curve).")],
    store: Annotated[str, typer.Option(help=STORE_HELP)] = DEFAULT_STORE,
    key: Annotated[str | None, typer.Option(help="Extraction key, when a source is cached under several.")] = None,
    views: Annotated[int, typer.Option(min=0, help="Also train on photometric views 1..K of every source "
                                                   "(DRIVE+photo1, ...; cache them with `dgss extract --views K`): "
                                                   "the strongest lever on unseen cameras measured.")] = 0,
    recipe: Annotated[Recipe | None, typer.Option(help="A measured set of the options below, by name (options given "
                                                  "beside it override its values): unet-reference is the plain "
                                                  "U-Net every DG table compares against.")] = None,
    head: Annotated[HeadName | None, option(Training.head)] = None,
    head_param: Annotated[list[str] | None, typer.Option(
        metavar="NAME=VALUE", rich_help_panel=ADVANCED, help="Head hyperparameter, repeatable; the head's config "
        "fields (e.g. width=32 for tsfreqagg, hidden=64,32 for mlp, base_channels=16 for unet); a wrong name lists "
        "the valid ones.")] = None,
    ensemble: Annotated[int | None, option(Training.ensemble)] = None,
    epochs: Annotated[int | None, option(Training.epochs)] = None,
    batch_size: Annotated[int | None, option(Training.batch_size)] = None,
    window: Annotated[int | None, option(Training.window)] = None,
    windows_per_image: Annotated[int | None, option(Training.windows_per_image)] = None,
    lr: Annotated[float | None, option(Training.lr)] = None,
    lr_schedule: Annotated[LRSchedule | None, option(Training.lr_schedule)] = None,
    seed: Annotated[int | None, option(Training.seed)] = None,
    dice_weight: Annotated[float | None, option(Training.dice_weight)] = None,
    validation_fraction: Annotated[float | None, option(Training.validation_fraction)] = None,
    validate_every: Annotated[int | None, option(Training.validate_every)] = None,
    flips: Annotated[bool | None, option(Training.flips)] = None,
    phases: Annotated[TrainingPhases | None, option(Training.phases)] = None,
    blocks: Annotated[str | None, typer.Option(rich_help_panel=ADVANCED, help="Comma list of cached blocks to train "
                                               "on (default: all; `dgss info` lists them), e.g. "
                                               "up_blocks.1,up_blocks.2.")] = None,
    timesteps: Annotated[str | None, typer.Option(rich_help_panel=ADVANCED, help="Comma list of cached timesteps to "
                                                  "train on (default: all), e.g. 25,50.")] = None,
    device: Annotated[str | None, option(Training.device)] = None,
    bands: Annotated[BandSelection | None, option(Training.bands)] = None,
    memory_gib: Annotated[float | None, option(MEMORY_GIB)] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the stopped run in --out from its last epoch; keep a finished one trained with these settings "
             "(refused, naming the settings, where any differ).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the run already in --out.")] = False,
) -> None:
    """Train heads on the cached features alone (no UNet, no image decoding) and write a run folder."""
    if resume and overwrite:
        raise typer.BadParameter("--resume and --overwrite contradict each other: pass one of them",
                                 param_hint="'--resume'")
    sources = comma_list(source, "--source")
    block_names, steps = comma_list(blocks, "--blocks"), comma_list(timesteps, "--timesteps", int)
    # Imported here so that `dgss --help` and the other commands do not pay for importing torch.
    from dgss.aggregate.heads import parse_head_params
    from dgss.aggregate.training import HeadTrainingConfig, fit_head
    from dgss.datasets import view_names
    from dgss.device import check_device

    chosen = given(head=head, epochs=epochs, batch_size=batch_size, window=window,
                   windows_per_image=windows_per_image, lr=lr, lr_schedule=lr_schedule, seed=seed,
                   ensemble=ensemble, dice_weight=dice_weight, validation_fraction=validation_fraction,
                   validate_every=validate_every, flips=flips, device=device, bands=bands, phases=phases)
    head_name = chosen.get("head", RECIPES[recipe]["head"] if recipe else Training.head.default)
    try:
        head_params = parse_head_params(head_name, head_param or [])
    except ModelError as error:
        raise typer.BadParameter(str(error), param_hint="'--head-param'") from None
    config = HeadTrainingConfig(**recipe_settings(recipe, chosen, head_params), blocks=block_names, timesteps=steps)
    check_device(config.device)
    sources += tuple(view for name in sources for view in view_names(name, views))
    keep_gib = MEMORY_GIB.default if memory_gib is None else memory_gib
    run_dir = fit_head(store, sources, out, config, key=key, resume=resume, overwrite=overwrite,
                       keep_bytes=int(min(keep_gib * 2**30, 2**62)))  # any huge budget: keep every image
    typer.echo(f"run written to {run_dir} (score it with `dgss evaluate --run {run_dir} --target NAME`)")
