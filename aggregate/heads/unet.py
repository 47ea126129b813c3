"""A plain U-Net on the canvas image: the standard supervised reference that uses no diffusion features.

``channels="green"`` is the classic vessel-segmentation input: the green channel (where vessels contrast most with
the background), standardised inside the FOV, with everything outside it set to the FOV's mean so the black
surround teaches nothing. Training fixes the mean and spread from its own images (`UNetConfig.fitted_to`), so a window
and the whole canvas are standardised alike, under any appearance target or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from dgss.aggregate.heads.inputs import NUM_CLASSES
from dgss.aggregate.spec import CacheSpec
from dgss.errors import ConfigMismatchError, ModelError


GREEN_MEAN, GREEN_STD = 89.468 / 255, 22.899 / 255
"""What runs recorded before `green_mean` and `green_std` standardised with: the shipped target's green (0..1)."""
CHANNELS = ("rgb", "green")


@dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """Width of the first stage (doubled at each of ``depth`` downsamplings) and the input: the canvas's three
    colour channels as cached (``rgb``) or its standardised green channel inside the FOV (``green``), with
    ``green_mean`` and ``green_std`` (0..1; training sets them from its images; None: each input's own)."""

    base_channels: int = 32
    depth: int = 4
    channels: str = "rgb"
    green_mean: float | None = None
    green_std: float | None = None
    predated: ClassVar[dict[str, Any]] = {"channels": "rgb", "green_mean": GREEN_MEAN, "green_std": GREEN_STD}

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.depth < 0:
            raise ModelError(f"unet base_channels={self.base_channels} must be >= 1 and depth={self.depth} >= 0")
        if self.channels not in CHANNELS:
            raise ModelError(f"unet channels={self.channels!r} must be one of {', '.join(CHANNELS)}")
        if (self.green_mean is None) != (self.green_std is None) or (self.green_std is not None
                                                                     and not self.green_std > 0):
            raise ModelError(f"unet green_mean={self.green_mean} and green_std={self.green_std}: give both "
                             "(green_std > 0) or neither")

    def fitted_to(self, images: Iterable[Mapping[str, Tensor]]) -> dict[str, float]:
        """What training fixes from its images: a green input's mean and spread, where not given, so a window and
        the whole canvas are standardised alike, now and at inference."""
        if self.channels != "green" or self.green_mean is not None:
            return {}
        mean, std = green_statistics(images)
        return {"green_mean": round(mean, 6), "green_std": round(std, 6)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        return cls(**data)


def _double_conv(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out), nn.ReLU(),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out), nn.ReLU())


class UNetHead(nn.Module):
    """U-Net (Ronneberger et al.) with BatchNorm, max-pool down and transposed-conv up, on ``batch["image"]``."""

    uses_features = False

    def __init__(self, spec: CacheSpec, config: UNetConfig) -> None:
        super().__init__()
        if spec.canvas_size % 2**config.depth:
            raise ModelError(f"unet depth={config.depth} needs a canvas divisible by {2**config.depth}, got "
                             f"{spec.canvas_size}; lower depth")
        self.spec = spec
        self.config = config
        widths = [config.base_channels * 2**i for i in range(config.depth + 1)]
        inputs = 3 if config.channels == "rgb" else 1
        self.down = nn.ModuleList(_double_conv(w_in, w_out) for w_in, w_out in zip([inputs, *widths[:-1]], widths))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(w, w // 2, 2, stride=2) for w in reversed(widths[1:]))
        self.merge = nn.ModuleList(_double_conv(w, w // 2) for w in reversed(widths[1:]))
        self.classify = nn.Conv2d(widths[0], NUM_CLASSES, 1)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits (batch, 2, y, x) from ``image`` (batch, 3, y, x) in [0, 1]: the canvas or a window of it."""
        image = batch["image"]
        multiple = 2**self.config.depth
        if image.shape[1] != 3 or image.shape[2] % multiple or image.shape[3] % multiple:
            raise ConfigMismatchError(f"'image' has per-image shape {tuple(image.shape[1:])}, the head expects "
                                      f"3 channels and sides divisible by {multiple}; use the cache the head was "
                                      "trained on")
        skips = []
        x = image if self.config.channels == "rgb" else standard_green(image, batch["fov"], self.config)
        for index, stage in enumerate(self.down):
            x = stage(self.pool(x) if index else x)
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([skip, up(x)], dim=1))
        return self.classify(x)


def standard_green(image: Tensor, fov: Tensor, config: UNetConfig) -> Tensor:
    """(batch, 1, y, x): the green channel standardised with the config's mean and spread (or each image's own
    inside its FOV), 0 (the FOV mean) outside the FOV."""
    green, inside = image[:, 1:2], fov[:, None].bool()
    if config.green_mean is not None:
        mean, std = torch.tensor(config.green_mean), torch.tensor(config.green_std)
    else:
        pixels = inside.sum(dim=(2, 3), keepdim=True).clamp(min=1)
        mean = (green * inside).sum(dim=(2, 3), keepdim=True) / pixels
        std = (((green - mean) * inside) ** 2).sum(dim=(2, 3), keepdim=True).div(pixels).sqrt().clamp(min=1e-3)
    return torch.where(inside, (green - mean) / std, torch.zeros_like(green))


def green_statistics(images: Iterable[Mapping[str, Tensor]]) -> tuple[float, float]:
    """The mean and standard deviation of the green channel over the FOV pixels of `images` (items with "image"
    (3, y, x) in [0, 1] and "fov"): what a green U-Net standardises with, fixed once from its training images."""
    total = squares = count = 0.0
    for item in images:
        green = item["image"][1][item["fov"].bool()].double()
        total, squares, count = total + green.sum().item(), squares + (green**2).sum().item(), count + green.numel()
    if not count:
        raise ModelError("the training images have no FOV pixels: the green U-Net has nothing to standardise by")
    mean = total / count
    return mean, max((squares / count - mean**2) ** 0.5, 1e-3)
