"""Frequency-aware fusion of a coarse and a fine map (FreqFusion, Chen et al., TPAMI 2024), in plain PyTorch.

FreqFusion upsamples the coarse map with content-adaptive low-pass kernels (CARAFE-style reassembly, which keeps
the upsampled map smooth and free of aliasing inside objects) and sharpens the fine map with content-adaptive
high-pass kernels (``x - lowpass(x)``, which keeps thin structures such as capillaries). The release needs mmcv's
CUDA CARAFE op; here the reassembly is a sum of shifted maps times kernel planes in plain PyTorch, so it runs on
the CPU and any GPU without holding the unfolded neighbourhoods.

Left out of the paper's module here: the offset generator (feature resampling) and the refinement of the low-pass
kernels with the fine map; ``dgss.aggregate.heads.freqfusion_full`` has both (``fusion=freqfusion-full``). Level
maps whose sizes differ by ``2**k`` are upsampled by ``k`` chained x2 steps; any
remaining mismatch (e.g. x3) is closed by bilinear interpolation after them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def hamming_window_2d(kernel_size: int) -> Tensor:
    """Separable symmetric Hamming window, flattened row-major: (kernel_size * kernel_size,) float32."""
    window = torch.hamming_window(kernel_size, periodic=False, dtype=torch.float32)
    return torch.outer(window, window).flatten()


def reassemble(x: Tensor, kernels: Tensor, scale: int) -> Tensor:
    """Filter ``x`` with one ``k x k`` kernel per output pixel, upsampling by ``scale`` (CARAFE reassembly).

    Output pixel ``(scale*i + a, scale*j + b)`` is the kernel-weighted sum of the ``k x k`` neighbourhood of input
    pixel ``(i, j)`` (zero padded); ``scale=1`` is a plain per-pixel local filter.

    Written as a sum over the ``k*k`` taps of each sub-pixel phase ``(a, b)``, each a shifted view of ``x`` times
    one kernel plane: no unfolded ``(sample, channel * k * k, y, x)`` tensor is ever held, so the memory of the
    forward pass and of what autograd keeps for the backward pass is a few maps the size of the output, not
    ``k * k`` times ``x`` (25x for FreqFusion's 5x5 upsampling kernels).

    Parameters
    ----------
    x
        (sample, channel, y, x) map to filter.
    kernels
        (sample, k*k, scale*y, scale*x) kernel weights, taps in row-major order.
    scale
        Integer upsampling factor.

    Returns
    -------
    Tensor
        (sample, channel, scale*y, scale*x).
    """
    n, c, h, w = x.shape
    size = math.isqrt(kernels.shape[1])
    padded = F.pad(x, [size // 2] * 4)
    weights = kernels.view(n, size * size, h, scale, w, scale)
    phases = []
    for a in range(scale):
        for b in range(scale):
            phase = None
            for tap in range(size * size):
                dy, dx = divmod(tap, size)
                term = padded[:, :, dy:dy + h, dx:dx + w] * weights[:, tap:tap + 1, :, a, :, b]
                phase = term if phase is None else phase.add_(term)
            phases.append(phase)
    stacked = torch.stack(phases, dim=-1).view(n, c, h, w, scale, scale)
    return stacked.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h * scale, w * scale)


class KernelPredictor(nn.Module):
    """Predict normalised, Hamming-windowed low-pass kernels from a map (CARAFE's compressor + content encoder).

    The last conv starts near zero (as in FreqFusion), so the first kernels are the plain Hamming low-pass.
    """

    def __init__(self, channels: int, kernel_channels: int, kernel_size: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.compress = nn.Conv2d(channels, kernel_channels, 1)
        self.encode = nn.Conv2d(kernel_channels, kernel_size**2 * scale**2, 3, padding=1)
        nn.init.normal_(self.encode.weight, std=1e-3)
        nn.init.zeros_(self.encode.bias)
        self.register_buffer("window", hamming_window_2d(kernel_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Kernels (sample, k*k, scale*y, scale*x), each summing to 1, for ``x`` (sample, channel, y, x)."""
        return normalise_kernels(F.pixel_shuffle(self.encode(self.compress(x)), self.scale), self.window)


def normalise_kernels(logits: Tensor, window: Tensor) -> Tensor:
    """Low-pass kernels from (sample, k*k, y, x) logits: softmax over the taps, times the (k*k,) Hamming
    ``window``, renormalised to sum to 1 (the window damps the far taps, so the kernels stay smooth)."""
    kernels = logits.softmax(dim=1) * window[None, :, None, None]
    return kernels / kernels.sum(dim=1, keepdim=True)


def upsampling_steps(coarse_size: tuple[int, int], fine_size: tuple[int, int]) -> tuple[int, bool]:
    """How many x2 steps bring ``coarse_size`` closest to ``fine_size`` without passing it, and whether a size
    mismatch remains after them (closed by bilinear interpolation)."""
    steps, size = 0, coarse_size
    while 2 * size[0] <= fine_size[0] and 2 * size[1] <= fine_size[1]:
        steps, size = steps + 1, (2 * size[0], 2 * size[1])
    return steps, size != fine_size


class AdaptiveUpsample(nn.Module):
    """x2 upsampling with predicted 5x5 low-pass kernels (FreqFusion's adaptive low-pass filter)."""

    def __init__(self, channels: int, kernel_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.predict = KernelPredictor(channels, kernel_channels, kernel_size, scale=2)

    def forward(self, x: Tensor) -> Tensor:
        """(sample, channel, y, x) -> (sample, channel, 2y, 2x)."""
        return reassemble(x, self.predict(x), scale=2)


class AdaptiveHighPass(nn.Module):
    """``x - lowpass(x)`` with predicted 3x3 low-pass kernels (FreqFusion's adaptive high-pass filter)."""

    def __init__(self, channels: int, kernel_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.predict = KernelPredictor(channels, kernel_channels, kernel_size, scale=1)

    def forward(self, x: Tensor) -> Tensor:
        """(sample, channel, y, x) -> its high-frequency residual, same shape."""
        return x - reassemble(x, self.predict(x), scale=1)


class FreqFusion(nn.Module):
    """Fuse a coarse map into a finer one: ``upsample_lowpass(coarse) + smooth + highpass(detail)``.

    ``smooth`` and ``detail`` are the fine level's low- and high-frequency maps; passing the same map for both
    gives FreqFusion's ``fine + (fine - lowpass(fine))``.

    Parameters
    ----------
    channels
        Channels of all three maps.
    coarse_size, fine_size
        (height, width) of the coarse and of the fine maps over the whole canvas; they set the number of x2
        upsampling steps.
    kernel_channels
        Channels of the kernel predictors' compressed map.
    upsample_kernel, highpass_kernel
        Side of the predicted low-pass kernels for upsampling (5 in FreqFusion) and for the high-pass (3).
    """

    def __init__(self, *, channels: int, coarse_size: tuple[int, int], fine_size: tuple[int, int],
                 kernel_channels: int, upsample_kernel: int = 5, highpass_kernel: int = 3) -> None:
        super().__init__()
        steps, self.resize = upsampling_steps(coarse_size, fine_size)
        self.upsample = nn.Sequential(*(AdaptiveUpsample(channels, kernel_channels, upsample_kernel)
                                        for _ in range(steps)))
        self.highpass = AdaptiveHighPass(channels, kernel_channels, highpass_kernel)

    def forward(self, coarse: Tensor, smooth: Tensor, detail: Tensor | None = None) -> Tensor:
        """Fuse (sample, channel, coarse_y, coarse_x) into (sample, channel, fine_y, fine_x) maps (``detail``
        None: ``smooth`` is both).

        The sizes may be those of a window of the canvas rather than of the whole canvas: only their ratio is
        fixed at construction.
        """
        up = self.upsample(coarse)
        if self.resize:
            up = F.interpolate(up, size=smooth.shape[-2:], mode="bilinear", align_corners=False)
        return up + smooth + self.highpass(smooth if detail is None else detail)


class BilinearFusion(nn.Module):
    """The ablation of FreqFusion: ``bilinear_upsample(coarse) + smooth (+ detail)``, nothing frequency-aware and
    no parameters (the fusion of a plain feature pyramid)."""

    def forward(self, coarse: Tensor, smooth: Tensor, detail: Tensor | None = None) -> Tensor:
        """Same maps and shapes as :meth:`FreqFusion.forward`."""
        up = F.interpolate(coarse, size=smooth.shape[-2:], mode="bilinear", align_corners=False)
        return up + smooth if detail is None else up + smooth + detail
