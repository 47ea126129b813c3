"""`dgss evaluate`: score a trained run on target datasets at native resolution, from the cache."""

from pathlib import Path
from typing import Annotated

import typer

from dgss.aggregate.settings import InferenceSettings as Inference
from dgss.pipelines.app import STORE_HELP, app, threshold_value
from dgss.pipelines.options import comma_list, inference_tile, option


@app.command("evaluate")
def evaluate_command(
    run: Annotated[Path, typer.Option(help="Run folder written by `dgss fit-head`.")],
    target: Annotated[str, typer.Option(help="Comma list of cached target datasets, e.g. CHASE_DB1,HRF (their "
                                             "test split where they have one, else all images).")],
    store: Annotated[str | None, typer.Option(help=f"{STORE_HELP} Default: the store the run was trained "
                                                   "from.")] = None,
    report: Annotated[Path | None, typer.Option(help="Folder for scores and overlays (default: RUN/evaluation).")] = None,
    overlays: Annotated[int, typer.Option(min=0, help="Overlay PNGs per target.")] = 3,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    tile: Annotated[int | None, option(Inference.tile)] = None,
    tta: Annotated[bool | None, option(Inference.tta)] = None,
    tile_context: Annotated[int | None, option(Inference.tile_context)] = None,
    allow_training_images: Annotated[bool, typer.Option(help="Score target images the run was trained on "
                                                             "(refused by default; counted in the report).")] = False,
    threshold: Annotated[str | None, typer.Option(metavar="T|otsu", callback=threshold_value, help="Decision threshold of every head, 0.001 "
                                                  "to 0.999, or otsu: a threshold per image and head that reads no "
                                                  "label (default: each head's own, chosen on the run's source "
                                                  "validation images).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a target's report already in --report (refused "
                                                 "otherwise).")] = False,
) -> None:
    """Print Dice, IoU, AUC-ROC, AUC-PR, sensitivity, specificity and accuracy per target; write CSV, JSON, PNGs."""
    # Imported here so that `dgss --help` and the other commands do not pay for importing torch.
    from dgss.aggregate.evaluation import evaluate_run, pooled_table, target_report_dir
    from dgss.device import check_device

    check_device(device)

    targets = list(comma_list(target, "--target"))
    report_dir = report if report is not None else run / "evaluation"
    results = evaluate_run(run, store, targets, report_dir, device=device, overlays=overlays,
                           tile=inference_tile(tile),
                           tile_context=Inference.tile_context.default if tile_context is None else tile_context,
                           allow_training_images=allow_training_images,
                           threshold=threshold, overwrite=overwrite,
                           flips=tta)
    typer.echo(pooled_table(results))
    folders = ", ".join(str(target_report_dir(report_dir, name)) for name in results["targets"])
    typer.echo(f"scores and overlays written to {folders}")
