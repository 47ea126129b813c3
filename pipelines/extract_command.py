"""`dgss extract`: cache a dataset's diffusion features in a Zarr store, on this machine or a Dask cluster."""

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from dgss.backbone.shipped import DEFAULT_BACKBONE
from dgss.errors import DgssError
from dgss.extract.settings import Bands, Mode, OutsideFov
from dgss.extract.settings import ExtractionSettings as Extraction
from dgss.pipelines.app import DEFAULT_STORE, STORE_HELP, app
from dgss.pipelines.extract_job import ExtractionRequest, ExtractionSummary, run_extraction
from dgss.pipelines.options import ADVANCED, comma_list, given, option


@app.command()
def extract(
    dataset: Annotated[str, typer.Option(help="Dataset name (DRIVE, HRF, SYNTH-A, folder:PATH, ...).")],
    store: Annotated[str, typer.Option(help=f"{STORE_HELP} Created if missing.")] = DEFAULT_STORE,
    model: Annotated[str, typer.Option(help=f"Shipped backbone name ({DEFAULT_BACKBONE}, the default, or an older one such as fundus-pool-v1), diffusers UNet2DModel folder or hub id.")] = "",
    data_root: Annotated[Optional[Path], typer.Option(help="Folder holding <NAME>/ datasets (else $DGSS_DATA_ROOT, else ./data).")] = None,
    blocks: Annotated[Optional[str], typer.Option(rich_help_panel=ADVANCED, help="Comma list of decoder blocks (see `dgss blocks`); default: coarse, middle, fine.")] = None,
    timesteps: Annotated[Optional[str], typer.Option(rich_help_panel=ADVANCED, help="Comma list of timesteps; default: the paper's set mapped onto the model's T.")] = None,
    mode: Annotated[Optional[Mode], option(Extraction.mode)] = None,
    draws: Annotated[Optional[int], option(Extraction.draws)] = None,
    seed: Annotated[Optional[int], option(Extraction.seed)] = None,
    inversion_steps: Annotated[Optional[int], option(Extraction.inversion_steps)] = None,
    bands: Annotated[Optional[Bands], option(Extraction.bands)] = None,
    input_size: Annotated[Optional[int], option(Extraction.input_size)] = None,
    canvas_size: Annotated[Optional[int], option(Extraction.canvas_size)] = None,
    tile_overlap: Annotated[Optional[int], option(Extraction.tile_overlap)] = None,
    mantissa_bits: Annotated[Optional[int], option(Extraction.mantissa_bits)] = None,
    canvas_field_deg: Annotated[Optional[float], option(Extraction.canvas_field_deg)] = None,
    outside_fov: Annotated[Optional[OutsideFov], option(Extraction.outside_fov)] = None,
    appearance: Annotated[str, typer.Option(metavar="pool|none|FILE", help="Colour target every image is matched to "
                                            "before the UNet sees it: pool (the backbone's training pool, with a "
                                            "warning where it has none), none, or a dgss_appearance.json file (e.g. a "
                                            "shipped backbone's).")] = "pool",
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:1, mps.")] = "cpu",
    workers: Annotated[int, typer.Option(min=0, help="Local Dask workers (processes, one model each); 0 runs in this process.")] = 0,
    threads_per_worker: Annotated[int, typer.Option(min=1, help="torch threads per worker (a worker extracts one image at a time).")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of a running Dask scheduler (tcp://host:8786).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Recompute images already done.")] = False,
    split: Annotated[Optional[str], typer.Option(help="Extract only this split's images (training, test, ...; see `dgss datasets`).")] = None,
    images: Annotated[Optional[str], typer.Option(help="Comma list of image ids: extract only these.")] = None,
    labelled_only: Annotated[bool, typer.Option(help="Extract only the images that have a vessel label (a dataset labelled in part is otherwise extracted whole).")] = False,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Extract only the first N images of the selection, in the dataset's order.")] = None,
    views: Annotated[int, typer.Option(min=0, help="Then extract photometric views 1..K of the dataset's training images (DATASET+photo1, ...), for `dgss fit-head --views K`.")] = 0,
) -> None:
    """Run the frozen UNet once per image and cache block x timestep x band features.

    --split, --images, --labelled-only and --limit compute a subset; the store entry still lists every image of the dataset, so a
    later run without them fills in the rest.
    """
    from dgss.datasets import view_names  # numpy and scipy: not for `dgss --help`

    if views and split not in (None, "training"):
        raise DgssError(f"--views {views} re-renders training images only and --split {split} selects none of them: "
                        "drop --views, or extract the views in a run with --split training")
    request = ExtractionRequest(
        dataset=dataset,
        store=store,
        model=model,
        data_root=data_root,
        blocks=comma_list(blocks, "--blocks"),
        timesteps=comma_list(timesteps, "--timesteps", int),
        appearance=appearance,
        **given(mode=mode, draws=draws, seed=seed, inversion_steps=inversion_steps, bands=bands, input_size=input_size,
                canvas_size=canvas_size, tile_overlap=tile_overlap, mantissa_bits=mantissa_bits,
                canvas_field_deg=canvas_field_deg, outside_fov=outside_fov),
        device=device,
        workers=workers,
        threads_per_worker=threads_per_worker,
        scheduler=scheduler,
        overwrite=overwrite,
        split=split,
        images=comma_list(images, "--images"),
        labelled_only=labelled_only,
        limit=limit,
    )
    for name in [dataset, *view_names(dataset, views)]:
        summary = run_extraction(dataclasses.replace(request, dataset=name))
        typer.echo(summary_line(summary, store))


def summary_line(summary: ExtractionSummary, store: str) -> str:
    """One line of counts; a subset run says how many of the dataset's images it was asked for."""
    others = f", {summary.left_to_others} left to another run on this store" if summary.left_to_others else ""
    done = f"{summary.computed} extracted, {summary.already_done} already done{others}"
    if summary.selected < summary.total:
        return f"{summary.dataset}: key {summary.key}, {summary.selected} of {summary.total} selected, {done} -> {store}"
    return f"{summary.dataset}: key {summary.key}, {done}, {summary.total} in all -> {store}"
