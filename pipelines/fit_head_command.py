"""`dgss fit-head`: train a segmentation head (or an ensemble) on cached features of one or more sources."""

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from dgss.aggregate.settings import BandSelection
from dgss.errors import DgssError
from dgss.pipelines.app import app


class Head(StrEnum):
    tsfreqagg = "tsfreqagg"
    mlp = "mlp"
    unet = "unet"


class LRSchedule(StrEnum):
    constant = "constant"
    cosine = "cosine"


@app.command("fit-head")
def fit_head_command(
    source: Annotated[str, typer.Option(help="Comma list of cached source datasets, e.g. DRIVE,STARE (their "
                                             "training split where they have one, else all images).")],
    store: Annotated[str, typer.Option(help="Feature store the sources were extracted into (a directory or a URL).")],
    out: Annotated[Path, typer.Option(help="Run folder to write (heads, run.json, loss curve).")],
    key: Annotated[str | None, typer.Option(help="Extraction key, when a source is cached under several.")] = None,
    views: Annotated[int, typer.Option(min=0, help="Also train on photometric views 1..K of every source "
                                                   "(DRIVE+photo1, ...; cache them with `dgss extract --views K`): "
                                                   "the strongest lever on unseen cameras measured.")] = 0,
    head: Annotated[Head, typer.Option(help="Head architecture.")] = Head.tsfreqagg,
    head_param: Annotated[list[str] | None, typer.Option(help="Head hyperparameter NAME=VALUE (JSON value), "
                                                              "repeatable.")] = None,
    ensemble: Annotated[int, typer.Option(min=1, help="Independently seeded heads (the release uses 10); "
                                                      "masks are their per-pixel majority vote.")] = 1,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the source images (release: 100).")] = 40,
    batch_size: Annotated[int, typer.Option(min=1, help="Images read per step (release: 2).")] = 2,
    window: Annotated[int, typer.Option(min=0, help="Side of the random training windows in canvas pixels; 0 trains "
                                                    "on whole canvases, as the release does.")] = 128,
    windows_per_image: Annotated[int, typer.Option(min=1, help="Windows cut from each image read.")] = 2,
    lr: Annotated[float, typer.Option(min=0, help="Adam learning rate (release: 2e-3).")] = 2e-3,
    lr_schedule: Annotated[LRSchedule, typer.Option(help="constant (the release) or cosine: annealed from --lr to 0 "
                                                         "over the run.")] = LRSchedule.constant,
    seed: Annotated[int, typer.Option(min=0, help="Seed of member 0; member m uses seed + m.")] = 0,
    dice_weight: Annotated[float, typer.Option(min=0, help="Weight of a soft-Dice term added to the cross-entropy.")] = 0.0,
    validation_fraction: Annotated[float, typer.Option(min=0, max=0.5, help="Share of each source's images held out "
                                                   "to choose the epoch and decision threshold (0: none, threshold "
                                                   "0.5, last epoch).")] = 0.2,
    validate_every: Annotated[int, typer.Option(min=1, help="Epochs between validations (and after the last).")] = 5,
    flips: Annotated[bool, typer.Option(help="Flip and rotate each training window by a random symmetry of the "
                                             "square (features, image and labels together).")] = False,
    blocks: Annotated[str | None, typer.Option(help="Comma list of cached blocks to train on (default: all; "
                                                   "`dgss info` lists them), e.g. up_blocks.1,up_blocks.2.")] = None,
    timesteps: Annotated[str | None, typer.Option(help="Comma list of cached timesteps to train on (default: all), "
                                                      "e.g. 25,50.")] = None,
    bands: Annotated[BandSelection, typer.Option(help="Cached bands to train on: all, or LL (the smooth Haar band "
                                                      "alone, no detail bands). Raw maps without the Haar split are "
                                                      "an extraction of their own: dgss extract --bands none.")
                     ] = BandSelection.all,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    memory_gib: Annotated[float, typer.Option(min=0, help="Decoded source images kept in RAM for the whole run "
                                                        "instead of read from the store every epoch (GiB; 0: "
                                                        "stream every read). Results do not depend on it.")] = 4.0,
    resume: Annotated[bool, typer.Option(help="Continue the stopped run in --out from its last epoch.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the run already in --out.")] = False,
) -> None:
    """Train heads on the cached features alone (no UNet, no image decoding) and write a run folder."""
    # Imported here so that `dgss --help` and the other commands do not pay for importing torch.
    from dgss.aggregate.training import HeadTrainingConfig, fit_head
    from dgss.datasets import view_names
    from dgss.device import check_device

    check_device(device)

    config = HeadTrainingConfig(head=head.value, head_params=parse_params(head_param or []), epochs=epochs,
                                batch_size=batch_size, window=window or None, windows_per_image=windows_per_image,
                                lr=lr, lr_schedule=lr_schedule.value, seed=seed, ensemble=ensemble,
                                dice_weight=dice_weight, validation_fraction=validation_fraction,
                                validate_every=validate_every, flips=flips, blocks=comma_list(blocks, "--blocks"),
                                timesteps=comma_list(timesteps, "--timesteps", int), bands=bands.value,
                                device=device)
    if resume and overwrite:
        raise DgssError("--resume and --overwrite contradict each other: pass one of them")
    sources = [name.strip() for name in source.split(",") if name.strip()]
    sources += [view for name in sources for view in view_names(name, views)]
    run_dir = fit_head(store, sources, out, config, key=key, resume=resume, overwrite=overwrite,
                       keep_bytes=int(memory_gib * 2**30))
    typer.echo(f"run written to {run_dir} (score it with `dgss evaluate --run {run_dir} --target NAME`)")


def comma_list(text: str | None, option: str, kind: type = str) -> tuple | None:
    """`a,b,c` as a tuple of `kind` (None stays None: everything); DgssError naming the option on a bad item."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return tuple(kind(item) for item in items)
    except ValueError:
        raise DgssError(f"{option} {text!r} is not a comma list of {kind.__name__} values, e.g. {option} "
                        f"{'25,50' if kind is int else 'up_blocks.1,up_blocks.2'}") from None


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """NAME=VALUE pairs as a dict; VALUE is read as JSON (numbers, true/false, lists), else kept as text."""
    params = {}
    for pair in pairs:
        name, sign, text = pair.partition("=")
        if not sign or not name:
            raise DgssError(f"--head-param {pair!r} is not NAME=VALUE, e.g. --head-param hidden=64")
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
    return params
