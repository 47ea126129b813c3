"""Baranchuk et al.'s per-pixel MLP (ddpm-segmentation) on all cached blocks, timesteps and bands, as 1x1 convs.

Baranchuk upsamples every block's features to the image size, concatenates them per pixel and classifies each
pixel with Linear -> ReLU -> BN -> Linear -> ReLU -> BN -> Linear. Bilinear upsampling is linear, so the first
Linear applied to the upsampled concatenation equals the sum over blocks of each block's share of that Linear
applied at the block's own size and then upsampled: this head computes it that way, which gives the same function
without ever holding the thousands-of-channels map at canvas size. Bands are concatenated as channels (the MLP is
free to mix them), timesteps likewise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgss.aggregate.heads.inputs import NUM_CLASSES, block_features, window_size
from dgss.aggregate.spec import CacheSpec
from dgss.errors import ModelError


@dataclass(frozen=True, kw_only=True)
class MLPConfig:
    """Hidden layer widths of the per-pixel MLP (Baranchuk et al.: 128 then 32)."""

    hidden: tuple[int, ...] = (128, 32)

    def __post_init__(self) -> None:
        if not self.hidden or min(self.hidden) < 1:
            raise ModelError(f"mlp hidden={self.hidden} needs at least one layer, each >= 1 wide")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLPConfig:
        return cls(**{**data, **({"hidden": tuple(data["hidden"])} if "hidden" in data else {})})


class MLPHead(nn.Module):
    """Per-pixel MLP over every block of ``spec``, returning (batch, 2, side, side) logits for the canvas or a window."""

    uses_features = True

    def __init__(self, spec: CacheSpec, config: MLPConfig) -> None:
        super().__init__()
        self.spec = spec
        self.config = config
        first = config.hidden[0]
        depth = len(spec.timesteps) * len(spec.band_names)
        self.block_projections = nn.ModuleList(nn.Conv2d(depth * b.channels, first, 1, bias=False)
                                               for b in spec.blocks)
        self.first_bias = nn.Parameter(torch.zeros(first))
        layers: list[nn.Module] = [nn.ReLU(), nn.BatchNorm2d(first)]
        for width_in, width_out in zip(config.hidden[:-1], config.hidden[1:]):
            layers += [nn.Conv2d(width_in, width_out, 1), nn.ReLU(), nn.BatchNorm2d(width_out)]
        layers.append(nn.Conv2d(config.hidden[-1], NUM_CLASSES, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits (batch, 2, side, side) from ``features/<block>`` (batch, timestep, band, channel, y, x)."""
        side = window_size(batch, self.spec)
        hidden = self.first_bias[None, :, None, None]
        for block, project in zip(self.spec.blocks, self.block_projections):
            features = block_features(batch, self.spec, block).flatten(1, 3).float()
            hidden = hidden + F.interpolate(project(features), size=(side, side), mode="bilinear", align_corners=False)
        return self.layers(hidden)
