"""Windows and tiles: cuts that keep every level aligned, training windows in the FOV, tiles equal to one call."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dgss.aggregate.heads import build_head
from dgss.aggregate.heads.freqfusion import reassemble
from dgss.aggregate.spec import BlockSpec, CacheSpec
from head_batches import random_batch
from dgss.aggregate.windows import Window, crop, sample_windows, tile_origins, tiled_logits, window_side


def _spec(canvas: int, channels: int = 3, timesteps: tuple[int, ...] = (1, 10)) -> CacheSpec:
    """The default extraction's layout: blocks at strides 8, 4, 2, so cached Haar maps at 16, 8 and 4."""
    sizes = {"coarse": canvas // 8, "middle": canvas // 4, "fine": canvas // 2}
    blocks = tuple(BlockSpec(name=f"up_blocks.{i}", channels=channels, height=size, width=size, level=level)
                   for i, (level, size) in enumerate(sizes.items()))
    return CacheSpec(blocks=blocks, timesteps=timesteps, bands="haar", canvas_size=canvas)


def _unfold_reassemble(x, kernels, scale):
    """The reassembly as first written: every k x k neighbourhood unfolded at once (25x the map for 5x5)."""
    n, c, h, w = x.shape
    taps = kernels.shape[1]
    size = math.isqrt(taps)
    patches = F.unfold(x, size, padding=size // 2).view(n, c, taps, h, w)
    weights = kernels.view(n, taps, h, scale, w, scale)
    return torch.einsum("nckhw,nkhawb->nchawb", patches, weights).reshape(n, c, h * scale, w * scale)


@pytest.mark.parametrize(("size", "scale"), [(5, 2), (3, 1)])
def test_lean_reassembly_matches_the_unfolded_one_with_gradients(size, scale):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 6, 5, generator=generator, requires_grad=True)
    kernels = torch.rand(3, size * size, 6 * scale, 5 * scale, generator=generator, requires_grad=True)
    lean = reassemble(x, kernels, scale)
    reference = _unfold_reassemble(x, kernels, scale)
    torch.testing.assert_close(lean, reference, atol=1e-5, rtol=0)
    upstream = torch.randn(lean.shape, generator=generator)
    lean_grads = torch.autograd.grad(lean, (x, kernels), upstream)
    reference_grads = torch.autograd.grad(reference, (x, kernels), upstream)
    for got, expected in zip(lean_grads, reference_grads):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_crop_cuts_every_level_at_its_own_stride():
    spec = _spec(64)
    canvas = torch.arange(64 * 64, dtype=torch.float32).view(1, 64, 64)
    arrays = {"image": canvas}
    for block in spec.blocks:  # each cached map is the canvas average-pooled to its stride
        arrays[spec.feature_key(block)] = F.avg_pool2d(canvas[None], spec.stride(block))[0]
    window = Window(top=16, left=32, side=32)
    cut = crop(arrays, spec, window)
    assert torch.equal(cut["image"], canvas[:, 16:48, 32:64])
    for block in spec.blocks:
        expected = F.avg_pool2d(cut["image"][None], spec.stride(block))[0]
        assert torch.equal(cut[spec.feature_key(block)], expected)


def test_training_windows_are_aligned_inside_the_canvas_and_mostly_on_the_fov():
    spec = _spec(128)
    fov = np.zeros((128, 128), dtype=bool)
    fov[90:110, 10:30] = True
    windows = sample_windows(fov, spec, 40, 200, np.random.default_rng(0))
    multiple = spec.window_multiple
    assert multiple == 16 and {w.side for w in windows} == {32}  # 40 rounded down to the coarsest stride
    assert all(w.top % multiple == 0 and w.left % multiple == 0 for w in windows)
    assert all(0 <= w.top <= 96 and 0 <= w.left <= 96 for w in windows)
    on_fov = [fov[w.top:w.top + w.side, w.left:w.left + w.side].any() for w in windows]
    assert 0.85 <= np.mean(on_fov) < 1.0  # most on the FOV, some anywhere


def test_window_side_falls_back_to_the_whole_canvas():
    spec = _spec(128)
    assert window_side(spec, None) == window_side(spec, 500) == 128
    assert window_side(spec, 5) == 16


def test_tiles_cover_the_canvas_with_their_kept_centres():
    assert tile_origins(512, 512, 96) == [0]
    origins = tile_origins(1024, 512, 96)
    assert origins == [0, 320, 512]
    kept = np.zeros(1024, dtype=bool)
    for origin in origins:
        start = origin if origin == 0 else origin + 96
        end = origin + 512 if origin + 512 == 1024 else origin + 512 - 96
        kept[start:end] = True
    assert kept.all()


@pytest.mark.parametrize("name", ["tsfreqagg", "tsfreqagg-refined", "mlp"])
def test_tiles_give_the_logits_of_the_whole_canvas(name):
    spec = _spec(512)
    params = {"tsfreqagg": {"width": 4, "kernel_channels": 4}, "mlp": {"hidden": [8]},
              "tsfreqagg-refined": {"width": 4, "kernel_channels": 4, "image_refine": 4}}[name]
    head = build_head(name.removesuffix("-refined"), spec, seed=1, **params).eval()
    if name.endswith("refined"):  # a trained refinement, not the zero start that changes nothing
        torch.nn.init.normal_(head.image_refine.layers[-1].weight, std=0.1)
    batch = random_batch(spec, 1)
    with torch.no_grad():
        whole = head(batch)
        tiled = tiled_logits(head, batch, spec, side=384, context=96)
    assert tiled.shape == whole.shape == (1, 2, 512, 512)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_tiles_without_enough_context_differ_so_the_test_above_can_fail():
    spec = _spec(512)
    head = build_head("tsfreqagg", spec, seed=1, width=4, kernel_channels=4).eval()
    batch = random_batch(spec, 1)
    with torch.no_grad():
        whole = head(batch)
        tiled = tiled_logits(head, batch, spec, side=128, context=0)
    assert (tiled - whole).abs().max() > 1e-3
