"""FreqFusion's offset generator: resample an upsampled map so that pixels near an edge take their own side's value.

Any low-pass upsampling blurs across a boundary: a background pixel beside a vessel gets part of the vessel's value
and the other way round. FreqFusion (Chen et al., TPAMI 2024) moves every output pixel's sampling point by a
predicted offset, and the offsets are predicted from local similarity: where a pixel's features differ from its
neighbours on one side, it lies on an edge, and sampling a little away from that side reads a value of its own
region. The offsets come from both levels (the coarse map's, one per x2 sub-pixel, and the fine map's), each a raw
offset times a sigmoid gain, and each channel group moves by its own offset.

Written from the paper and its public code (``LocalSimGuidedSampler``), with two changes, both so that tiled
inference equals whole-canvas inference (``dgss.aggregate.windows``): the release normalises the guide maps with
GroupNorm, whose statistics span the whole map, so a tile would be normalised otherwise than the whole canvas
(BatchNorm's running statistics here); and its offsets are unbounded, which makes the receptive field unbounded
(a soft bound of :data:`MAX_OFFSET` here, the identity for small offsets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SIMILARITY_WINDOW = 3
"""Side of the neighbourhood whose similarity to its centre shows an edge (FreqFusion's local window)."""
MAX_OFFSET = 2.0
"""Bound on every offset, in fine pixels (one coarse pixel): the release leaves them unbounded, but an unbounded
offset is an unbounded receptive field, and tiled inference equals whole-canvas inference only within a bounded one."""


def local_similarity(x: Tensor, window: int = SIMILARITY_WINDOW, dilation: int = 2) -> Tensor:
    """Cosine similarity of each pixel's feature vector to its ``window**2 - 1`` neighbours ``dilation`` pixels
    apart (zero beyond the map), neighbours in row-major order.

    Parameters
    ----------
    x
        (sample, channel, y, x).

    Returns
    -------
    Tensor
        (sample, window**2 - 1, y, x).
    """
    _, _, height, width = x.shape
    reach = window // 2 * dilation
    # Unit vectors once, then one product per neighbour: 15x faster on the CPU than F.cosine_similarity per pair.
    unit = x / x.norm(dim=1, keepdim=True).clamp(min=1e-8)
    padded = F.pad(unit, [reach] * 4)
    centre = window * window // 2
    similarities = []
    for tap in range(window * window):
        if tap == centre:
            continue
        dy, dx = (dilation * step for step in divmod(tap, window))
        similarities.append((unit * padded[:, :, dy:dy + height, dx:dx + width]).sum(dim=1))
    return torch.stack(similarities, dim=1)


def resample(x: Tensor, offsets: Tensor, groups: int) -> Tensor:
    """Sample ``x`` bilinearly at every pixel centre moved by its group's offset (clamped to the map's border).

    Parameters
    ----------
    x
        (sample, channel, y, x), channel divisible by ``groups``.
    offsets
        (sample, groups * 2, y, x): per channel group, the (dx, dy) move in pixels of ``x``.
    groups
        Channel groups; group ``g`` holds channels ``g * channel / groups`` onwards.

    Returns
    -------
    Tensor
        (sample, channel, y, x); zero offsets give ``x`` back.
    """
    samples, channels, height, width = x.shape
    moves = offsets.reshape(samples * groups, 2, height, width)
    columns = torch.arange(width, dtype=x.dtype, device=x.device) + 0.5
    rows = torch.arange(height, dtype=x.dtype, device=x.device)[:, None] + 0.5
    # grid_sample's coordinates with align_corners=False: -1 and 1 are the outer edges of the border pixels.
    grid = torch.stack([2 * (columns + moves[:, 0]) / width - 1, 2 * (rows + moves[:, 1]) / height - 1], dim=-1)
    grouped = x.reshape(samples * groups, channels // groups, height, width)
    sampled = F.grid_sample(grouped, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.view(samples, channels, height, width)


class EdgeResampler(nn.Module):
    """Predict offsets from a coarse and a fine guide map and resample a map upsampled x2 from the coarse one.

    Parameters
    ----------
    guide_channels
        Channels of both guide maps (FreqFusion's compressed maps).
    groups
        Channel groups of the resampled map, each moved by its own offset (4 in FreqFusion).
    kernel_size
        Side of the offset convolutions (FreqFusion's encoder kernel, 3).
    """

    def __init__(self, guide_channels: int, groups: int = 4, kernel_size: int = 3) -> None:
        super().__init__()
        self.groups = groups
        described = guide_channels + SIMILARITY_WINDOW**2 - 1  # the guide and its similarity to its neighbours
        self.norm_coarse = nn.BatchNorm2d(guide_channels)
        self.norm_fine = nn.BatchNorm2d(guide_channels)

        def conv(out_channels: int) -> nn.Conv2d:
            return nn.Conv2d(described, out_channels, kernel_size, padding=kernel_size // 2)

        # The coarse map's convs predict one offset per x2 sub-pixel (4 per pixel), pixel-shuffled to the fine grid.
        self.coarse_offset, self.fine_offset = conv(2 * groups * 4), conv(2 * groups)
        self.coarse_gain, self.fine_gain = conv(2 * groups * 4), conv(2 * groups)
        for offset in (self.coarse_offset, self.fine_offset):  # tiny first offsets: start as no resampling
            nn.init.normal_(offset.weight, std=1e-3)
            nn.init.zeros_(offset.bias)
        for gain in (self.coarse_gain, self.fine_gain):  # gain sigmoid(0) = 1/2 everywhere at the start
            nn.init.zeros_(gain.weight)
            nn.init.zeros_(gain.bias)

    def offsets(self, coarse_guide: Tensor, fine_guide: Tensor) -> Tensor:
        """Offsets (sample, groups * 2, 2y, 2x) in fine pixels from guides (sample, guide_channel, y, x) and
        (sample, guide_channel, 2y, 2x)."""
        coarse = _described(self.norm_coarse(coarse_guide))
        fine = _described(self.norm_fine(fine_guide))
        raw = F.pixel_shuffle(self.coarse_offset(coarse), 2) + self.fine_offset(fine)
        gain = torch.sigmoid(F.pixel_shuffle(self.coarse_gain(coarse), 2) + self.fine_gain(fine))
        # The release's offsets are in coarse pixels, two fine pixels each; tanh bounds them, keeping small ones.
        return MAX_OFFSET * torch.tanh(2 * raw * gain / MAX_OFFSET)

    def forward(self, upsampled: Tensor, coarse_guide: Tensor, fine_guide: Tensor) -> Tensor:
        """Resample ``upsampled`` (sample, channel, 2y, 2x) along the edges the guides show."""
        return resample(upsampled, self.offsets(coarse_guide, fine_guide), self.groups)


def _described(guide: Tensor) -> Tensor:
    """A guide map with its local similarity appended: what it is, and where its edges are."""
    return torch.cat([guide, local_similarity(guide)], dim=1)
