"""CARAFE-style reassembly against a direct loop, predicted kernels, and FreqFusion's size handling."""

import pytest
import torch

from dgss.aggregate.heads.freqfusion import (AdaptiveHighPass, AdaptiveUpsample, FreqFusion, KernelPredictor,
                                             hamming_window_2d, reassemble)


def _loop_reassemble(x, kernels, scale):
    n, c, h, w = x.shape
    size = int(kernels.shape[1] ** 0.5)
    r = size // 2
    out = torch.zeros(n, c, h * scale, w * scale, dtype=torch.float64)
    for i in range(h * scale):
        for j in range(w * scale):
            for dy in range(size):
                for dx in range(size):
                    y, xx = i // scale + dy - r, j // scale + dx - r
                    if 0 <= y < h and 0 <= xx < w:
                        out[:, :, i, j] += kernels[:, dy * size + dx, i, j, None] * x[:, :, y, xx]
    return out


@pytest.mark.parametrize(("size", "scale"), [(5, 2), (3, 1), (3, 2)])
def test_reassemble_matches_direct_loop(size, scale):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 3, 4, generator=generator, dtype=torch.float64)
    kernels = torch.rand(1, size * size, 3 * scale, 4 * scale, generator=generator, dtype=torch.float64)
    got = reassemble(x, kernels, scale)
    torch.testing.assert_close(got, _loop_reassemble(x, kernels, scale), atol=1e-5, rtol=0)


def test_hamming_window_is_symmetric_and_peaks_in_the_centre():
    window = hamming_window_2d(5).view(5, 5)
    assert torch.allclose(window, window.T) and torch.allclose(window, window.flip(0))
    assert window[2, 2] == window.max() == pytest.approx(1.0)


def test_predicted_kernels_are_normalised_lowpass():
    torch.manual_seed(0)
    predictor = KernelPredictor(channels=4, kernel_channels=3, kernel_size=5, scale=2)
    kernels = predictor(torch.randn(2, 4, 3, 3))
    assert kernels.shape == (2, 25, 6, 6)
    assert (kernels >= 0).all()
    torch.testing.assert_close(kernels.sum(dim=1), torch.ones(2, 6, 6))


def test_upsample_keeps_constants_and_highpass_removes_them():
    torch.manual_seed(0)
    constant = torch.full((1, 4, 8, 8), 3.0)
    up = AdaptiveUpsample(4, 3)(constant)
    assert up.shape == (1, 4, 16, 16)
    torch.testing.assert_close(up[..., 4:-4, 4:-4], torch.full((1, 4, 8, 8), 3.0))
    detail = AdaptiveHighPass(4, 3)(constant)
    torch.testing.assert_close(detail[..., 1:-1, 1:-1], torch.zeros(1, 4, 6, 6))


@pytest.mark.parametrize(("coarse", "fine", "steps", "resize"),
                         [((4, 4), (8, 8), 1, False), ((2, 2), (8, 8), 2, False), ((3, 3), (9, 9), 1, True),
                          ((4, 4), (4, 4), 0, False)])
def test_fusion_matches_sizes(coarse, fine, steps, resize):
    fusion = FreqFusion(channels=4, coarse_size=coarse, fine_size=fine, kernel_channels=3)
    assert len(fusion.upsample) == steps and fusion.resize == resize
    fine_map = torch.randn(2, 4, *fine)
    assert fusion(torch.randn(2, 4, *coarse), fine_map, fine_map).shape == (2, 4, *fine)
