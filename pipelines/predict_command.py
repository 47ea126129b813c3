"""`dgss predict`: vessel probability, mask and overlay for new images, from a trained run."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from dgss.aggregate.settings import InferenceSettings as Inference
from dgss.pipelines.app import app, threshold_value
from dgss.pipelines.options import inference_tile, option
from dgss.settings import Setting

FIELD_DEG = Setting(name="field_deg", kind=float, default=45.0, low=1,
                    help="Field angle of the camera that took the images, degrees; used when the run's cache was "
                         "extracted with --canvas-field-deg.")


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Images to segment (JPEG, PNG, TIFF, GIF, PPM, BMP, .gz), or "
                                                      "folders: every image file directly in each, sorted.")],
    run: Annotated[Path, typer.Option(help="Run folder written by `dgss fit-head`.")],
    out: Annotated[Path, typer.Option(help="Folder for <stem>_prob.png, <stem>_mask.png, <stem>_overlay.png.")] = Path("predictions"),
    model: Annotated[Optional[str], typer.Option(help="Backbone the run's features came from; default: the one recorded in the run's store.")] = None,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, mps.")] = "cpu",
    tile: Annotated[int | None, option(Inference.tile)] = None,
    tta: Annotated[bool | None, option(Inference.tta)] = None,
    tile_context: Annotated[int | None, option(Inference.tile_context)] = None,
    field_deg: Annotated[float | None, option(FIELD_DEG)] = None,
    fov: Annotated[Optional[Path], typer.Option(metavar="MASK_DIR", help="Folder of FOV masks named by image "
                                                "stem (<stem>.png, .gif, .tif, ...) used instead of the FOV "
                                                "derived from each photo.")] = None,
    threshold: Annotated[Optional[str], typer.Option(metavar="T|otsu", callback=threshold_value, help="Decision threshold of every head, "
                                                     "0.001 to 0.999, or otsu: a threshold per image and head that "
                                                     "reads no label; default: each head's own, chosen on the run's "
                                                     "source validation images.")] = None,
    save_probabilities: Annotated[bool, typer.Option(help="Also write <stem>_prob.tif, the float32 probability at "
                                                          "native resolution.")] = False,
    resume: Annotated[bool, typer.Option(help="Skip images whose outputs all exist in --out (an interrupted run "
                                              "resumes).")] = False,
) -> None:
    """Compute features with the run's extraction config and segment each image at its native resolution."""
    from dgss.pipelines.predict import predict_images  # here, so that `dgss --help` does not import torch

    written = predict_images(run, images, out, model=model, device=device, tile=inference_tile(tile),
                             tile_context=Inference.tile_context.default if tile_context is None else tile_context,
                             field_of_view_deg=FIELD_DEG.default if field_deg is None else field_deg, fov_dir=fov,
                             threshold=threshold, save_probabilities=save_probabilities, skip_existing=resume,
                             flips=tta)
    for prediction in written:
        if not prediction.skipped:
            typer.echo(f"{prediction.image} -> {prediction.mask}")
    skipped = sum(prediction.skipped for prediction in written)
    if skipped:
        typer.echo(f"skipped {skipped} of {len(written)} image(s) whose outputs already exist in {out}")

