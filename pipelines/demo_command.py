"""`dgss demo`: the README's first command; the whole method end to end, with no data and no downloads."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from dgss.pipelines.app import app


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the backbone, feature store, runs and report.")] = Path("dgss-output/demo"),
    data_root: Annotated[Optional[Path], typer.Option(help="Run DRIVE,STARE -> CHASE_DB1 from this data root instead of the synthetic domains.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Use this backbone instead of training one (real-data mode: default the shipped one).")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Local Dask workers for extraction (0: in this process).")] = 2,
) -> None:
    """Train a backbone, extract, fit T&S-FreqAgg and a U-Net baseline, score them on an unseen domain."""
    from dgss.pipelines.demo import DemoConfig, run_demo

    if data_root is None:
        config = DemoConfig(out=out, backbone=model, workers=workers)
    else:
        from dgss.backbone.shipped import shipped_backbone_path

        shipped = shipped_backbone_path()
        backbone = model or (str(shipped) if (shipped / "config.json").is_file() else None)
        config = DemoConfig.for_real_data(data_root, out, backbone, workers)
    run_demo(config)
