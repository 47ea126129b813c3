"""Load a frozen diffusion UNet and its noise schedule: the backbone whose decoder activations are the features.

The first version is pixel-space only (a diffusers ``UNet2DModel``). :class:`Backbone` is the seam for a latent
backbone (VAE encoder + ``UNet2DConditionModel`` + an empty-prompt embedding): it would implement ``encode`` with the
VAE and ``predict`` with the conditional UNet, and every feature mode works unchanged on top of it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, UNet2DModel
from torch import nn

from dgss.backbone.appearance import AppearanceTarget, load_appearance
from dgss.device import check_device
from dgss.errors import ModelError
from dgss.settings import PredictionType

_EXPECTED = (
    "expected a diffusers folder with config.json + diffusion_pytorch_model.safetensors (a UNet2DModel), "
    "or a pipeline folder with unet/ and scheduler/"
)
_PREDICTION_TYPES = tuple(PredictionType)


class Backbone(ABC):
    """A frozen diffusion model seen as: encode an image, predict at a timestep, expose blocks to tap.

    Attributes
    ----------
    name : str
        Where the model came from (path or hub id); provenance, not part of the cache key.
    digest : str
        sha256 over the weights and the noise schedule; part of the cache key.
    network : torch.nn.Module
        The module whose ``mid_block`` / ``up_blocks.N`` submodules are tapped with forward hooks.
    scheduler_config : dict
        The DDIM scheduler config (noise schedule, number of training steps, prediction type).
    """

    name: str
    digest: str
    network: nn.Module
    scheduler_config: dict[str, Any]

    @property
    def num_train_timesteps(self) -> int:
        """Number of diffusion steps the model was trained with; valid timesteps are 0 .. T-1."""
        return int(self.scheduler_config["num_train_timesteps"])

    @property
    def prediction_type(self) -> str:
        """What the network predicts: "epsilon", "sample" (x0) or "v_prediction"."""
        return str(self.scheduler_config["prediction_type"])

    @property
    @abstractmethod
    def sample_size(self) -> int | None:
        """Input size (pixels) the model was trained at, when its config says so."""

    @property
    def device(self) -> torch.device:
        """Device the weights live on."""
        return next(self.network.parameters()).device

    def alphas_cumprod(self) -> torch.Tensor:
        """Cumulative signal level a_t of the noise schedule, (timestep,) float64 on the CPU."""
        return DDIMScheduler.from_config(self.scheduler_config).alphas_cumprod.to(torch.float64)

    @abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Map images (batch, rgb, y, x) in [-1, 1] to the model's input space (identity for pixel space)."""

    @abstractmethod
    def predict(self, sample: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """One network pass: (batch, channel, y, x) and (batch,) int timesteps -> the prediction, same shape."""


@dataclass(eq=False)
class PixelBackbone(Backbone):
    """A pixel-space ``UNet2DModel`` with its DDIM scheduler config, frozen in eval mode."""

    name: str
    digest: str
    network: UNet2DModel
    scheduler_config: dict[str, Any]
    appearance: AppearanceTarget | None = None  # the training pool's FOV colour statistics, when saved with it

    @property
    def sample_size(self) -> int | None:
        size = self.network.config.sample_size
        return int(size[0]) if isinstance(size, (tuple, list)) else (int(size) if size else None)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def predict(self, sample: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.network(sample, timesteps).sample


def load_backbone(model: str | Path, device: str | torch.device = "cpu") -> Backbone:
    """Load a pixel-space diffusion backbone from a local folder or a hub id, frozen and in eval mode.

    Parameters
    ----------
    model : str or Path
        A diffusers ``UNet2DModel`` folder (``config.json`` + weights, optionally ``scheduler_config.json``; a
        default DDIM schedule otherwise) or a pipeline folder with ``unet/`` and ``scheduler/`` subfolders, or a
        hub id resolvable offline from the local cache.
    device : str or torch.device
        Where the weights go.

    Raises
    ------
    ModelError
        The path is missing, is not a diffusers UNet2DModel, or its weights cannot be read.
    DeviceError
        This machine or torch build cannot use `device`.
    """
    check_device(str(device))
    unet_dir, scheduler_dir = _locate_model(model)
    network = _load_unet(model, unet_dir)
    scheduler_config = _load_scheduler_config(model, scheduler_dir)
    if network.config.in_channels != 3:
        raise ModelError(
            f"model {model}: expects {network.config.in_channels} input channels; a pixel-space backbone needs 3 "
            "(latent backbones are not supported yet)"
        )
    network.requires_grad_(False).eval().to(device)
    return PixelBackbone(
        name=str(model),
        digest=_digest(network, scheduler_config),
        network=network,
        scheduler_config=scheduler_config,
        appearance=load_appearance(unet_dir),
    )


def _locate_model(model: str | Path) -> tuple[str, str | None]:
    """Folder of the UNet and of the scheduler config (None: default schedule), for a path or a hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "unet" / "config.json").is_file():
            scheduler = path / "scheduler" / "scheduler_config.json"
            return str(path / "unet"), str(scheduler.parent) if scheduler.is_file() else None
        if (path / "config.json").is_file():
            return str(path), str(path) if (path / "scheduler_config.json").is_file() else None
        raise ModelError(f"model {path} is not a diffusers model: no config.json or unet/config.json; {_EXPECTED}")
    if path.exists():
        raise ModelError(f"model {path} is a file; {_EXPECTED}")
    if _looks_like_hub_id(str(model)):
        return _fetch_hub_model(str(model))
    raise ModelError(f"model {path} does not exist; {_EXPECTED}")


def _looks_like_hub_id(model: str) -> bool:
    """True for "owner/name": one slash, no leading dot or slash."""
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith((".", "~"))


def _fetch_hub_model(model: str) -> tuple[str, str | None]:
    """Resolve a hub id to a local snapshot folder (uses the local cache when offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.bin"])
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise ModelError(
            f"model {model} is not a local folder and could not be fetched from the hub ({type(error).__name__}); "
            f"{_EXPECTED}"
        ) from error
    return _locate_model(folder)


def _load_unet(model: str | Path, unet_dir: str) -> UNet2DModel:
    """Read a UNet2DModel, turning diffusers' errors into one-line ModelErrors."""
    try:
        config = json.loads(Path(unet_dir, "config.json").read_text())
    except json.JSONDecodeError as error:
        where = f"{unet_dir}/config.json"
        raise ModelError(f"model {model}: {where} is not valid JSON ({error.msg}, line {error.lineno})") from error
    class_name = config.get("_class_name") if isinstance(config, dict) else None
    if class_name != "UNet2DModel":
        raise ModelError(
            f"model {model}: {unet_dir}/config.json describes {class_name!r}, not a UNet2DModel "
            "(only pixel-space backbones are supported yet)"
        )
    try:
        return UNet2DModel.from_pretrained(unet_dir, low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"model {model}: cannot load the UNet weights from {unet_dir} ({first_line})") from error


def _load_scheduler_config(model: str | Path, scheduler_dir: str | None) -> dict[str, Any]:
    """The DDIM scheduler config: the saved one (any DDPM/DDIM-style scheduler) or diffusers' default."""
    if scheduler_dir is None:
        config = dict(DDIMScheduler().config)
    else:
        saved = DDIMScheduler.load_config(scheduler_dir)
        config = dict(DDIMScheduler.from_config(saved).config)
    if config["prediction_type"] not in _PREDICTION_TYPES:
        raise ModelError(
            f"model {model}: prediction_type {config['prediction_type']!r} is not one of {', '.join(_PREDICTION_TYPES)}"
        )
    return {key: value for key, value in config.items() if not key.startswith("_")}


def _digest(network: nn.Module, scheduler_config: dict[str, Any]) -> str:
    """sha256 over every weight tensor (name, dtype, shape, bytes) and the canonical schedule JSON."""
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(json.dumps(scheduler_config, sort_keys=True, default=list).encode())
    return digest.hexdigest()
