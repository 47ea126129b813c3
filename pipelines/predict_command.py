"""`dgss predict`: vessel probability, mask and overlay for new images, from a trained run."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from dgss.pipelines.app import app


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Images to segment (JPEG, PNG, TIFF, GIF, PPM, .gz).")],
    run: Annotated[Path, typer.Option(help="Run folder written by `dgss fit-head`.")],
    out: Annotated[Path, typer.Option(help="Folder for <stem>_prob.png, <stem>_mask.png, <stem>_overlay.png.")] = Path("predictions"),
    model: Annotated[Optional[str], typer.Option(help="Backbone the run's features came from; default: the one recorded in the run's store.")] = None,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, mps.")] = "cpu",
    tile: Annotated[int, typer.Option(min=0, help="Side of the tiles the heads are applied in, canvas pixels; 0: the "
                                                  "whole canvas at once.")] = 512,
    tile_context: Annotated[int, typer.Option(min=0, help="Margin dropped from each inner tile edge, canvas "
                                                          "pixels.")] = 96,
    field_deg: Annotated[float, typer.Option(min=1, help="Field angle of the camera that took the images, degrees; "
                                                         "used when the run's cache was extracted with "
                                                         "--canvas-field-deg.")] = 45.0,
) -> None:
    """Compute features with the run's extraction config and segment each image at its native resolution."""
    from dgss.pipelines.predict import predict_images  # here, so that `dgss --help` does not import torch

    for written in predict_images(run, images, out, model=model, device=device,
                                  tile=tile or None, tile_context=tile_context, field_of_view_deg=field_deg):
        typer.echo(f"{written.image} -> {written.mask}")
