"""The T&S-FreqAgg head: per-level branches over space, frequency-aware coarse-to-fine fusion, gating over time.

How the cached Haar bands are used. The point of the method is to treat smooth context and thin-vessel detail
differently, and the cache already holds them apart: LL is a block's smooth content at half resolution, and LH, HL,
HH hold exactly what LL lacks (edges, thin vessels). So the bands are used as they are, rather than merged back by
an inverse Haar transform only for FreqFusion to split them again:

- the coarsest level has no coarser map to be fused into, so all its bands enter its one branch together;
- every finer level has a smooth branch on LL and a detail branch on LH, HL, HH; in the fusion the smooth map is
  added as it is and the detail map goes through the adaptive high-pass (``up(coarse) + smooth + hp(detail)``).

With bands ``"none"`` each level has one branch on the raw map, used as both, which is FreqFusion's
``up(coarse) + fine + hp(fine)`` exactly; so has each level with the LL band alone (``fit-head --bands LL``). Either way the head runs at the finest cached map size (half the finest
block map with Haar bands: 1/8 of the canvas at the default blocks) and its logits are upsampled bilinearly to the
canvas. A vessel 2-3 canvas pixels wide is then drawn from a map 8x coarser: the head finds centre lines but not
widths. Two options, neither in the release, draw the logits finer:

- ``subpixel`` (on by default; ``subpixel=false`` is the release's output): with Haar bands, the finest level's
  detail bands hold what its map has at twice the head's resolution (LL, LH, HL, HH of a pixel are exactly its 2x2
  block). The classifier then predicts a 2x2 block of logits per pixel (a 3x3 convolution to 4 x 2 channels,
  pixel-shuffled), so the logits come out at the finest block's own resolution, as a learned inverse of the Haar
  split, before the bilinear upsampling to the canvas (without bands, it is a learned 2x upsampling).
- ``image_refine`` > 0 adds a small full-resolution refinement (three 3x3 convolutions on the upsampled logits and
  the canvas image the backbone saw, added to the logits).

Timesteps are folded into the batch: every layer is shared across timesteps except the conditional BatchNorm's
gain and bias, and a gate mixes the per-timestep logits pixel by pixel (a mixture of experts over time).

Two options put the release's parts in that the default leaves out: ``fusion=freqfusion-full`` is FreqFusion as
published (kernels predicted from both maps, edge resampling: ``dgss.aggregate.heads.freqfusion_full``), and
``residual_norm=timestep`` gives the residual blocks after each fusion timestep-conditional BatchNorm too.

Two switches take the method's parts out, for the ablations of bench/ablations.py: ``fusion=bilinear`` fuses the
levels by plain bilinear upsampling and addition (no adaptive low- or high-pass), and ``gate`` chooses how the
per-timestep logits are mixed: ``pixel`` (the release's per-pixel softmax gate), ``mean`` (their plain mean) or
``single`` (one timestep, no gate: the head must be trained on one timestep, chosen with ``fit-head --timesteps T``,
so that only that timestep is read from the cache).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgss.aggregate.heads.conditional_norm import TimestepConditionalBatchNorm2d, folded_timestep_index
from dgss.aggregate.heads.freqfusion import BilinearFusion, FreqFusion
from dgss.aggregate.heads.freqfusion_full import FullFreqFusion
from dgss.aggregate.heads.inputs import NUM_CLASSES, level_features, window_size
from dgss.aggregate.spec import CacheSpec
from dgss.errors import ModelError


class Fusion(StrEnum):
    """How a coarse level is fused into the next finer one."""

    freqfusion = "freqfusion"
    bilinear = "bilinear"
    freqfusion_full = "freqfusion-full"


class ResidualNorm(StrEnum):
    """The normalisation in the residual blocks after each fusion: one BatchNorm for all timesteps, or
    timestep-conditional (as in the level branches)."""

    batch = "batch"
    timestep = "timestep"


class Gate(StrEnum):
    """How the per-timestep logits become one map: per-pixel softmax weights, their plain mean, or one timestep."""

    pixel = "pixel"
    mean = "mean"
    single = "single"


@dataclass(frozen=True, kw_only=True)
class TSFreqAggConfig:
    """Hyperparameters of the T&S-FreqAgg head (defaults as released but for kernel channels and ``subpixel``,
    chosen here on unseen cameras: bench/dg_protocol.py)."""

    #: What a run record written before a field existed meant by its absence (its default may have changed since).
    predated: ClassVar[dict[str, Any]] = {"subpixel": False, "fusion": Fusion.freqfusion.value,
                                          "gate": Gate.pixel.value, "residual_norm": ResidualNorm.batch.value}

    width: int = 64
    dropout: float = 0.2
    kernel_channels: int = 64
    upsample_kernel: int = 5
    highpass_kernel: int = 3
    image_refine: int = 0
    subpixel: bool = True
    fusion: str = Fusion.freqfusion.value
    gate: str = Gate.pixel.value
    residual_norm: str = ResidualNorm.batch.value

    def __post_init__(self) -> None:
        for name, choices in (("fusion", Fusion), ("gate", Gate), ("residual_norm", ResidualNorm)):
            if getattr(self, name) not in set(choices):
                raise ModelError(f"tsfreqagg {name}={getattr(self, name)!r}: use one of {', '.join(choices)}")
            object.__setattr__(self, name, str(getattr(self, name)))  # a plain string in the record
        if self.image_refine < 0:
            raise ModelError(f"tsfreqagg image_refine={self.image_refine} must be >= 0 (0: no refinement)")
        if self.width < 1 or self.kernel_channels < 1:
            raise ModelError(f"tsfreqagg width={self.width} and kernel_channels={self.kernel_channels} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"tsfreqagg dropout={self.dropout} must be in [0, 1)")
        for name in ("upsample_kernel", "highpass_kernel"):
            size = getattr(self, name)
            if size < 1 or size % 2 == 0:
                raise ModelError(f"tsfreqagg {name}={size} must be odd and positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TSFreqAggConfig:
        return cls(**data)


class LevelBranch(nn.Module):
    """Depthwise 3x3 conv -> timestep-conditional BN -> ReLU -> Dropout2d -> 1x1 conv to ``width`` channels."""

    def __init__(self, in_channels: int, width: int, num_timesteps: int, dropout: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.norm = TimestepConditionalBatchNorm2d(in_channels, num_timesteps)
        self.dropout = nn.Dropout2d(dropout)
        self.project = nn.Conv2d(in_channels, width, 1)

    def forward(self, x: Tensor, timestep_index: Tensor) -> Tensor:
        """(sample, in_channel, y, x) with (sample,) timestep indices -> (sample, width, y, x)."""
        x = F.relu(self.norm(self.depthwise(x), timestep_index))
        return self.project(self.dropout(x))


class ResidualBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity shortcut, cleaning up each fused map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor, timestep_index: Tensor) -> Tensor:
        """As :meth:`TimestepResidualBlock.forward`; one BatchNorm serves all timesteps, so the index is unread."""
        return F.relu(x + self.body(x))


class TimestepResidualBlock(nn.Module):
    """:class:`ResidualBlock` with timestep-conditional BatchNorm (``residual_norm=timestep``, as released)."""

    def __init__(self, channels: int, num_timesteps: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = TimestepConditionalBatchNorm2d(channels, num_timesteps)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = TimestepConditionalBatchNorm2d(channels, num_timesteps)

    def forward(self, x: Tensor, timestep_index: Tensor) -> Tensor:
        """(sample, channel, y, x) with (sample,) timestep indices -> the same shape."""
        body = F.relu(self.norm1(self.conv1(x), timestep_index))
        return F.relu(x + self.norm2(self.conv2(body), timestep_index))


class TimeGate(nn.Module):
    """Mix per-timestep logits with per-pixel softmax weights predicted by a 1x1 conv over all of them."""

    def __init__(self, num_timesteps: int, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.gate = nn.Conv2d(num_timesteps * num_classes, num_timesteps, 1)

    def forward(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Mix ``logits`` (batch, timestep, class, y, x).

        Returns
        -------
        tuple[Tensor, Tensor]
            Mixed logits (batch, class, y, x) and the gate weights (batch, timestep, y, x), summing to 1 over
            timesteps.
        """
        weights = self.gate(logits.flatten(1, 2)).softmax(dim=1)
        return (weights[:, :, None] * logits).sum(dim=1), weights


class MeanGate(nn.Module):
    """The plain mean of the per-timestep logits: every timestep weighs the same everywhere (no parameters). Over
    one timestep it is that timestep's logits."""

    def forward(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """As :meth:`TimeGate.forward`; the weights are 1 / timesteps everywhere."""
        batch, steps, _, height, width = logits.shape
        return logits.mean(dim=1), logits.new_full((batch, steps, height, width), 1 / steps)


class TSFreqAggHead(nn.Module):
    """T&S-FreqAgg over the levels of ``spec`` (one to three), returning (batch, 2, side, side) logits for a batch
    that covers the whole canvas or a window of it (see ``dgss.aggregate.windows``)."""

    uses_features = True

    def __init__(self, spec: CacheSpec, config: TSFreqAggConfig) -> None:
        super().__init__()
        self.spec = spec
        self.config = config
        levels = spec.levels
        steps = len(spec.timesteps)
        bands = len(spec.band_names)
        self.split_bands = spec.bands == "haar"
        if config.gate == Gate.single and steps != 1:
            raise ModelError(f"tsfreqagg gate=single reads one timestep, but the head is given {steps} "
                             f"({', '.join(map(str, spec.timesteps))}): choose one with fit-head --timesteps T")

        def branch(channels: int) -> LevelBranch:
            return LevelBranch(channels, config.width, steps, config.dropout)

        self.smooth = nn.ModuleDict({levels[0]: branch(bands * spec.level_channels(levels[0]))})
        self.smooth.update({lv: branch(spec.level_channels(lv)) for lv in levels[1:]})
        self.detail = nn.ModuleDict({lv: branch((bands - 1) * spec.level_channels(lv))
                                     for lv in levels[1:] if self.split_bands})
        self.fusions = nn.ModuleList(_fusion(config, spec.level_size(coarse), spec.level_size(fine))
                                     for coarse, fine in zip(levels[:-1], levels[1:]))
        self.refine = nn.ModuleList(
            TimestepResidualBlock(config.width, steps) if config.residual_norm == ResidualNorm.timestep else
            ResidualBlock(config.width) for _ in levels[1:])
        self.classify = SubpixelClassifier(config.width) if config.subpixel else nn.Conv2d(config.width, NUM_CLASSES, 1)
        self.time_gate = TimeGate(steps) if config.gate == Gate.pixel else MeanGate()
        self.image_refine = ImageRefinement(config.image_refine) if config.image_refine else None

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits (batch, 2, side, side) from ``features/<block>`` (batch, timestep, band, channel, y, x)."""
        return self.forward_with_gates(batch)[0]

    def forward_with_gates(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Logits as :meth:`forward`, plus the time gate weights (batch, timestep, y, x) at the logits' map size
        (the head's, or twice it with ``subpixel``)."""
        mixed, gates = self.time_gate(self.timestep_logits(batch))
        return self._to_window(mixed, batch), gates

    def expert_logits(self, batch: dict[str, Tensor]) -> Tensor:
        """Every timestep's logits (batch, timestep, 2, side, side) as the head would output them without the gate:
        the experts of the release's first training phase (``dgss.aggregate.phases``)."""
        logits = self.timestep_logits(batch)
        size, steps = logits.shape[:2]
        experts = self._to_window(logits.flatten(0, 1), batch, repeats=steps)
        return experts.view(size, steps, *experts.shape[1:])

    def _to_window(self, logits: Tensor, batch: dict[str, Tensor], repeats: int = 1) -> Tensor:
        """(sample, 2, y, x) logits, ``repeats`` consecutive samples per batch item, upsampled to the batch's window
        and refined from its image (``image_refine``)."""
        side = window_size(batch, self.spec)
        if logits.shape[-2:] != (side, side):
            logits = F.interpolate(logits, size=(side, side), mode="bilinear", align_corners=False)
        if self.image_refine is None:
            return logits
        return self.image_refine(logits, batch["image"].repeat_interleave(repeats, dim=0))

    def timestep_logits(self, batch: dict[str, Tensor]) -> Tensor:
        """Each timestep's logits (batch, timestep, 2, y, x) at the logits' map size, before the gate mixes them."""
        levels = self.spec.levels
        first = level_features(batch, self.spec, levels[0])
        size, steps = first.shape[:2]
        index = folded_timestep_index(size, steps, first.device)
        fused = self.smooth[levels[0]](first.flatten(0, 1).flatten(1, 2), index)
        for level, fusion, refine in zip(levels[1:], self.fusions, self.refine):
            features = level_features(batch, self.spec, level).flatten(0, 1)
            smooth = self.smooth[level](features[:, 0], index)
            detail = self.detail[level](features[:, 1:].flatten(1, 2), index) if self.split_bands else None
            fused = refine(fusion(fused, smooth, detail), index)
        logits = self.classify(fused)
        return logits.view(size, steps, *logits.shape[1:])


def _fusion(config: TSFreqAggConfig, coarse_size: tuple[int, int], fine_size: tuple[int, int]) -> nn.Module:
    """The fusion module ``config.fusion`` names, between levels of these map sizes."""
    if config.fusion == Fusion.bilinear:
        return BilinearFusion()
    kind = FullFreqFusion if config.fusion == Fusion.freqfusion_full else FreqFusion
    return kind(channels=config.width, coarse_size=coarse_size, fine_size=fine_size,
                kernel_channels=config.kernel_channels, upsample_kernel=config.upsample_kernel,
                highpass_kernel=config.highpass_kernel)


class SubpixelClassifier(nn.Module):
    """Logits at twice the map's resolution: a 3x3 convolution to a 2x2 block of class logits per pixel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.blocks = nn.Conv2d(channels, NUM_CLASSES * 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, channels, y, x) -> (B, 2, 2y, 2x)."""
        return F.pixel_shuffle(self.blocks(x), 2)


class ImageRefinement(nn.Module):
    """Full-resolution residual correction of upsampled logits from the canvas image: vessel widths at pixel scale.

    Three 3x3 convolutions (receptive field 7 px, far inside the tiles' context) on (logits, image); the last one
    starts at zero, so a new head predicts exactly what it would without the refinement.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(NUM_CLASSES + 3, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, NUM_CLASSES, 3, padding=1))
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, logits: Tensor, image: Tensor) -> Tensor:
        """(B, 2, y, x) logits corrected from the (B, 3, y, x) image in [0, 1] of the same window."""
        return logits + self.layers(torch.cat([logits, image.to(logits.dtype)], dim=1))
