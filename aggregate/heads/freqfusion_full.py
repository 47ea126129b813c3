"""FreqFusion as published (Chen et al., TPAMI 2024): kernels predicted from both maps, and edge resampling.

``dgss.aggregate.heads.freqfusion`` predicts the upsampling kernels from the coarse map alone and the high-pass
kernels from the fine map alone. The published module (``fusion=freqfusion-full``) lets each see both maps, and
moves the upsampled map's pixels away from edges:

1. Both maps are compressed to ``kernel_channels`` by a 1x1 conv each.
2. Initial fusion: the compressed fine map is sharpened with high-pass kernels predicted from itself
   (``c + (c - lowpass(c))``), so that its edges stand out to the low-pass kernel encoder.
3. Low-pass kernels: the encoder's logits on the sharpened fine map, plus its logits on the compressed coarse map
   upsampled x2 by kernels normalised from the fine logits alone; normalised (softmax, Hamming window).
4. High-pass kernels: the high-pass encoder's logits on the compressed fine map, plus its logits on the compressed
   coarse map upsampled x2 by the low-pass kernels of step 3; normalised.
5. Output: ``resample(lowpass_up(coarse)) + smooth + highpass(detail)``, where ``resample`` is the offset
   generator of ``dgss.aggregate.heads.edge_resampling``, guided by the compressed coarse and sharpened fine maps.

Each encoder is one conv shared by both maps, as in the release. Written from the paper and its public code (no
mmcv: the reassembly is ``dgss.aggregate.heads.freqfusion.reassemble``), for level maps whose sizes are ``2**k``
apart: the first ``k - 1`` x2 steps are the coarse-only adaptive upsampling, the last one is the guided step above.
"""

from __future__ import annotations

from torch import Tensor, nn

from dgss.aggregate.heads.edge_resampling import EdgeResampler
from dgss.aggregate.heads.freqfusion import (AdaptiveUpsample, hamming_window_2d, normalise_kernels, reassemble,
                                             upsampling_steps)
from dgss.errors import ModelError

RESAMPLE_GROUPS = 4
"""Channel groups that the edge resampling moves each by its own offset (FreqFusion's ``feature_resample_group``)."""


class FullFreqFusion(nn.Module):
    """Fuse a coarse map into a finer one as the published FreqFusion does; same call as
    :class:`dgss.aggregate.heads.freqfusion.FreqFusion`.

    Parameters
    ----------
    channels
        Channels of all three maps; divisible by :data:`RESAMPLE_GROUPS`.
    coarse_size, fine_size
        (height, width) of the coarse and of the fine maps over the whole canvas: ``2**k`` apart, ``k >= 1``.
    kernel_channels
        Channels of the compressed maps the kernels and offsets are predicted from (64 in FreqFusion).
    upsample_kernel, highpass_kernel
        Side of the low-pass kernels for upsampling (5) and of those of the high-pass (3).

    Raises
    ------
    ModelError
        Sizes not ``2**k`` apart, or ``channels`` not divisible by :data:`RESAMPLE_GROUPS`.
    """

    def __init__(self, *, channels: int, coarse_size: tuple[int, int], fine_size: tuple[int, int],
                 kernel_channels: int, upsample_kernel: int = 5, highpass_kernel: int = 3) -> None:
        super().__init__()
        steps, resize = upsampling_steps(coarse_size, fine_size)
        if steps == 0 or resize:
            raise ModelError(f"tsfreqagg fusion=freqfusion-full fuses maps 2, 4, 8... times apart, not "
                             f"{coarse_size} into {fine_size}: use fusion=freqfusion for this cache")
        if channels % RESAMPLE_GROUPS:
            raise ModelError(f"tsfreqagg fusion=freqfusion-full resamples {RESAMPLE_GROUPS} channel groups: width "
                             f"{channels} must be a multiple of {RESAMPLE_GROUPS}")
        self.upsample = nn.Sequential(*(AdaptiveUpsample(channels, kernel_channels, upsample_kernel)
                                        for _ in range(steps - 1)))
        self.compress_coarse = nn.Conv2d(channels, kernel_channels, 1)
        self.compress_fine = nn.Conv2d(channels, kernel_channels, 1)
        self.lowpass_encoder = nn.Conv2d(kernel_channels, upsample_kernel**2, 3, padding=1)
        self.highpass_encoder = nn.Conv2d(kernel_channels, highpass_kernel**2, 3, padding=1)
        for encoder in (self.lowpass_encoder, self.highpass_encoder):  # start as the plain Hamming low-pass
            nn.init.normal_(encoder.weight, std=1e-3)
            nn.init.zeros_(encoder.bias)
        self.register_buffer("lowpass_window", hamming_window_2d(upsample_kernel), persistent=False)
        self.register_buffer("highpass_window", hamming_window_2d(highpass_kernel), persistent=False)
        self.resampler = EdgeResampler(kernel_channels, RESAMPLE_GROUPS)

    def forward(self, coarse: Tensor, smooth: Tensor, detail: Tensor | None = None) -> Tensor:
        """Fuse (sample, channel, coarse_y, coarse_x) into (sample, channel, fine_y, fine_x) maps (``detail``
        None: ``smooth`` is both); the fine map the kernels see is ``smooth + detail``."""
        coarse = self.upsample(coarse)
        fine = smooth if detail is None else smooth + detail
        detail = smooth if detail is None else detail
        compressed_coarse, compressed_fine = self.compress_coarse(coarse), self.compress_fine(fine)
        # 2. initial fusion: the compressed fine map sharpened by its own high-pass kernels
        highpass_fine = self.highpass_encoder(compressed_fine)
        initial = normalise_kernels(highpass_fine, self.highpass_window)
        sharpened = 2 * compressed_fine - reassemble(compressed_fine, initial, scale=1)
        # 3. low-pass kernels from both maps; the coarse logits upsampled by the fine map's own kernels
        lowpass_fine = self.lowpass_encoder(sharpened)
        initial = normalise_kernels(lowpass_fine, self.lowpass_window)
        lowpass = normalise_kernels(
            lowpass_fine + reassemble(self.lowpass_encoder(compressed_coarse), initial, scale=2), self.lowpass_window)
        # 4. high-pass kernels from both maps; the coarse logits upsampled by the low-pass kernels
        highpass = normalise_kernels(
            highpass_fine + reassemble(self.highpass_encoder(compressed_coarse), lowpass, scale=2),
            self.highpass_window)
        # 5. upsample, move pixels off the edges, add the fine map and its high frequencies
        upsampled = self.resampler(reassemble(coarse, lowpass, scale=2), compressed_coarse, sharpened)
        return upsampled + smooth + detail - reassemble(detail, highpass, scale=1)
