"""`dgss blocks --model PATH`: the decoder blocks a backbone offers, their map sizes and the default levels."""

from typing import Annotated

import typer

from dgss.errors import ModelError
from dgss.pipelines.app import app


@app.command()
def blocks(
    model: Annotated[str, typer.Option(help="Diffusers UNet2DModel folder, pipeline folder, hub id or shipped "
                                            "backbone name; default: the shipped backbone.")] = "",
    input_size: Annotated[
        int | None, typer.Option(min=8, help="Model input side in pixels; default: the model's sample size.")
    ] = None,
) -> None:
    """List tappable decoder blocks (name, channels, map size, stride) and the default coarse/middle/fine blocks."""
    # Imported here so that `dgss --help` and the other commands do not pay for importing torch.
    from dgss.backbone.loading import load_backbone
    from dgss.extract.blocks import default_blocks, group_levels, list_blocks, select_blocks
    from dgss.extract.config import default_timesteps
    from dgss.backbone.shipped import resolve_model

    backbone = load_backbone(resolve_model(model))
    size = input_size or backbone.sample_size
    if size is None:
        raise ModelError(f"model {model} does not say its sample size; pass --input-size")
    infos = list_blocks(backbone, size)
    chosen = default_blocks(infos, size)
    level_of = {name: level for level, names in group_levels(select_blocks(infos, chosen)).items() for name in names}
    typer.echo(
        f"model {backbone.name}  digest {backbone.digest[:16]}  input {size}px  "
        f"T={backbone.num_train_timesteps} ({backbone.prediction_type})"
    )
    typer.echo(f"{'block':<14}{'channels':>9}{'height':>8}{'width':>7}{'stride':>8}  default level")
    for info in infos:
        typer.echo(
            f"{info.name:<14}{info.channels:>9}{info.height:>8}{info.width:>7}{size // info.height:>8}  "
            f"{level_of.get(info.name, '-')}"
        )
    typer.echo(f"default timesteps: {', '.join(map(str, default_timesteps(backbone.num_train_timesteps)))}")
