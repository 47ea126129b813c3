"""The backbones shipped with dgss, by name, and the one used when a command is given no `--model`.

Each is a diffusers folder inside the installed package (`dgss/backbone/models/<name>/`), trained by
`dgss train-diffusion` on unlabelled fundus photos only (see its MODEL_CARD.md), so no download is needed.
`--model <name>` picks one; shipping a stronger one means copying its run with :func:`ship_backbone` and changing
DEFAULT_BACKBONE, while the older names stay loadable (stores extracted with them keep their meaning).
"""

import shutil
from pathlib import Path

from dgss.errors import ModelError, RunError

DEFAULT_BACKBONE = "fundus-pool-v2"
BACKBONES_DIR = Path(__file__).resolve().parent / "models"
# What a shipped folder holds of a training run: the model and what a person needs to judge it. Not the
# checkpoints (four times the weights) nor every checkpoint's samples.
_MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json",
                "dgss_appearance.json", "MODEL_CARD.md")
_RECORD_FILES = ("training.json", "loss.csv", "loss.png", "samples_vs_real.png")


def shipped_backbones() -> list[str]:
    """Names of the backbones in this installation, sorted."""
    if not BACKBONES_DIR.is_dir():
        return []
    return sorted(path.name for path in BACKBONES_DIR.iterdir() if (path / "config.json").is_file())


def shipped_backbone_path(name: str | None = None) -> Path:
    """Folder of the shipped backbone `name` (default: DEFAULT_BACKBONE); it may be absent from a source checkout
    that did not fetch it."""
    return BACKBONES_DIR / (name or DEFAULT_BACKBONE)


def resolve_model(model: str | Path | None) -> str:
    """The folder or hub id to load for `--model`: an existing path as given, a shipped backbone's name as its
    folder, no model as the default backbone's folder; anything else as given (a hub id)."""
    if not model:
        path = shipped_backbone_path()
        if not (path / "config.json").is_file():
            raise ModelError(
                f"no --model given and no shipped backbone at {path}; pass --model PATH "
                "(a diffusers UNet2DModel folder, e.g. one made by `dgss train-diffusion`)"
            )
        return str(path)
    if Path(model).expanduser().exists():
        return str(model)
    name = str(model)
    if name in shipped_backbones():
        return str(shipped_backbone_path(name))
    if "/" not in name:  # neither a path nor an owner/name hub id
        raise ModelError(
            f"model {name} is neither a folder nor a shipped backbone ({', '.join(shipped_backbones()) or 'none'}); "
            "pass a diffusers UNet2DModel folder or one of those names"
        )
    return name


def backbone_reference(model: str | Path) -> str:
    """How a run or a hint names a backbone so that another machine finds it again: a shipped backbone by its name
    (its folder differs between installations), a folder by its absolute path, a hub id as it is."""
    path = Path(model).expanduser()
    if path.exists():
        resolved = path.resolve()
        return resolved.name if resolved.parent == BACKBONES_DIR else str(resolved)
    return str(model)


def ship_backbone(run: str | Path, name: str, backbones_dir: Path | None = None) -> Path:
    """Copy a `dgss train-diffusion` run's model, card, loss and samples into `backbones_dir/name` (default: this
    package's backbones), so that `--model name` loads it; never over an existing backbone.

    A run stopped early ships as it is: its card says at which step.
    """
    run = Path(run)
    target = (backbones_dir or BACKBONES_DIR) / name
    missing = [file for file in _MODEL_FILES if not (run / file).is_file()]
    if missing:
        raise RunError(f"{run} has no {', '.join(missing)}; ship the output folder of a `dgss train-diffusion` run")
    if target.exists():
        raise RunError(f"backbone {target} exists already; ship under another name or remove that folder first")
    target.mkdir(parents=True)
    for file in (*_MODEL_FILES, *_RECORD_FILES):
        if (run / file).is_file():
            shutil.copy2(run / file, target / file)
    return target
