"""The backbone shipped with dgss, used when a command is given no `--model`.

It is a diffusers folder inside the installed package (`dgss/extract/backbones/<name>/`), trained by
`dgss train-diffusion` on unlabelled fundus photos only (see its MODEL_CARD.md), so no download is needed.
"""

from pathlib import Path

from dgss.store.errors import ModelError

SHIPPED_BACKBONE = "fundus-pool-v1"
BACKBONES_DIR = Path(__file__).resolve().parent / "backbones"


def shipped_backbone_path() -> Path:
    """Folder of the shipped backbone (it may be absent from a source checkout that did not fetch it)."""
    return BACKBONES_DIR / SHIPPED_BACKBONE


def resolve_model(model: str | Path | None) -> str:
    """`model` as given, or the shipped backbone's folder when none is given."""
    if model:
        return str(model)
    path = shipped_backbone_path()
    if not (path / "config.json").is_file():
        raise ModelError(
            f"no --model given and no shipped backbone at {path}; pass --model PATH "
            "(a diffusers UNet2DModel folder, e.g. one made by `dgss train-diffusion`)"
        )
    return str(path)
