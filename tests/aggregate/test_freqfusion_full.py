"""FreqFusion as published (``fusion=freqfusion-full``) and timestep-conditional residual blocks
(``residual_norm=timestep``): the edge resampling, the guided kernels, the head options and old runs."""

import pytest
import torch
import torch.nn.functional as F

from dgss.aggregate.heads import build_head, parse_head_params, recorded_head_params
from dgss.aggregate.heads.edge_resampling import EdgeResampler, local_similarity, resample
from dgss.aggregate.heads.freqfusion import AdaptiveUpsample
from dgss.aggregate.heads.freqfusion_full import FullFreqFusion
from dgss.aggregate.heads.tsfreqagg import ResidualBlock, TimestepResidualBlock
from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.aggregate.windows import tiled_logits
from dgss.errors import ModelError
from head_batches import random_batch

SMALL = {"width": 8, "kernel_channels": 4}
RELEASE = {"fusion": "freqfusion-full", "residual_norm": "timestep"}


def _spec(canvas: int = 32, strides: tuple[int, ...] = (8, 4, 2)) -> CacheSpec:
    """Haar blocks at the given canvas strides, coarse to fine (maps half their size)."""
    levels = ("coarse", "middle", "fine")[-len(strides):]
    blocks = tuple(BlockSpec(name=f"up_blocks.{i}", channels=3, height=canvas // stride, width=canvas // stride,
                             level=level) for i, (level, stride) in enumerate(zip(levels, strides)))
    return CacheSpec(blocks=blocks, timesteps=(1, 10), bands="haar", canvas_size=canvas)


def test_zero_offsets_resample_nothing():
    x = torch.randn(2, 8, 6, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(resample(x, torch.zeros(2, 8, 6, 5), groups=4), x, atol=1e-6, rtol=0)


def test_offsets_move_each_channel_group_by_its_own_pixels():
    x = torch.arange(2 * 4 * 5, dtype=torch.float32).view(1, 2, 4, 5)
    offsets = torch.zeros(1, 4, 4, 5)
    offsets[0, 0] = 1.0  # group 0: one pixel right (dx)
    offsets[0, 3] = -1.0  # group 1: one pixel up (dy)
    moved = resample(x, offsets, groups=2)
    torch.testing.assert_close(moved[0, 0, :, :-1], x[0, 0, :, 1:])
    torch.testing.assert_close(moved[0, 0, :, -1], x[0, 0, :, -1])  # clamped at the border
    torch.testing.assert_close(moved[0, 1, 1:], x[0, 1, :-1])


def test_local_similarity_is_one_inside_a_uniform_region_and_drops_across_an_edge():
    x = torch.ones(1, 3, 9, 9)
    x[..., 5:] = -1.0  # an edge between columns 4 and 5
    similarity = local_similarity(x)
    assert similarity.shape == (1, 8, 9, 9)
    torch.testing.assert_close(similarity[0, :, 2:-2, 2], torch.ones(8, 5))
    assert similarity[0, :, 4, 4].min() == pytest.approx(-1.0)  # its right neighbours (2 px away) lie across


def test_new_resampler_starts_near_no_resampling():
    resampler = EdgeResampler(guide_channels=4, groups=2)
    offsets = resampler.offsets(torch.randn(2, 4, 4, 4), torch.randn(2, 4, 8, 8))
    assert offsets.shape == (2, 4, 8, 8) and offsets.abs().max() < 0.1


@pytest.mark.parametrize(("coarse", "fine", "plain_steps"), [((4, 4), (8, 8), 0), ((2, 2), (8, 8), 1)])
def test_full_fusion_shapes(coarse, fine, plain_steps):
    fusion = FullFreqFusion(channels=8, coarse_size=coarse, fine_size=fine, kernel_channels=4)
    assert sum(isinstance(module, AdaptiveUpsample) for module in fusion.modules()) == plain_steps
    smooth, detail = torch.randn(2, 8, *fine), torch.randn(2, 8, *fine)
    assert fusion(torch.randn(2, 8, *coarse), smooth, detail).shape == (2, 8, *fine)
    assert fusion(torch.randn(2, 8, *coarse), smooth).shape == (2, 8, *fine)


def test_full_fusion_keeps_constants_and_adds_no_detail_to_them():
    """Low-pass kernels sum to 1, resampling a constant leaves it, the high-pass removes it: inside the map,
    constant inputs give ``coarse + smooth`` whatever the kernels and offsets."""
    torch.manual_seed(0)
    fusion = FullFreqFusion(channels=8, coarse_size=(8, 8), fine_size=(16, 16), kernel_channels=4).eval()
    for encoder in (fusion.lowpass_encoder, fusion.highpass_encoder):
        torch.nn.init.normal_(encoder.weight, std=0.5)  # kernels far from their start
    torch.nn.init.constant_(fusion.resampler.fine_offset.bias, 0.7)  # every pixel moves 0.7 px
    coarse, smooth, detail = (torch.full((1, 8, size, size), value) for size, value in ((8, 2.0), (16, 3.0),
                                                                                         (16, 0.5)))
    with torch.no_grad():
        assert fusion.resampler.offsets(fusion.compress_coarse(coarse), torch.zeros(1, 4, 16, 16)).min() > 0.6
        fused = fusion(coarse, smooth, detail)
    torch.testing.assert_close(fused[..., 5:-5, 5:-5], torch.full((1, 8, 6, 6), 5.0), atol=1e-5, rtol=0)


def test_the_fine_map_refines_the_upsampling_kernels():
    torch.manual_seed(0)
    fusion = FullFreqFusion(channels=8, coarse_size=(4, 4), fine_size=(8, 8), kernel_channels=4).eval()
    torch.nn.init.normal_(fusion.lowpass_encoder.weight, std=0.5)
    for offset in (fusion.resampler.coarse_offset, fusion.resampler.fine_offset):
        torch.nn.init.zeros_(offset.weight)  # no resampling: what changes below are the kernels
    coarse, zeros = torch.randn(1, 8, 4, 4), torch.zeros(1, 8, 8, 8)
    # A smooth branch without detail adds itself; any other change is the upsampled coarse map's.
    fine = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        alone, guided = fusion(coarse, zeros, zeros), fusion(coarse, fine, zeros) - fine
    assert (guided - alone).abs().max() > 1e-3


def test_full_fusion_refuses_sizes_not_powers_of_two_apart_and_widths_it_cannot_group():
    with pytest.raises(ModelError, match="freqfusion-full.*use fusion=freqfusion"):
        FullFreqFusion(channels=8, coarse_size=(3, 3), fine_size=(9, 9), kernel_channels=4)
    with pytest.raises(ModelError, match="width 6 must be a multiple of 4"):
        FullFreqFusion(channels=6, coarse_size=(4, 4), fine_size=(8, 8), kernel_channels=4)


def test_release_options_parse_and_their_values_are_listed():
    assert parse_head_params("tsfreqagg", ["fusion=freqfusion-full", "residual_norm=timestep"]) == RELEASE
    with pytest.raises(ModelError, match="batch, timestep"):
        parse_head_params("tsfreqagg", ["residual_norm=group"])


@pytest.mark.parametrize("strides", [(8, 4, 2), (8, 2)])
def test_head_with_the_release_options_has_their_parts_and_its_shape(strides):
    spec = _spec(strides=strides)
    head = build_head("tsfreqagg", spec, **RELEASE, **SMALL)
    assert sum(isinstance(module, FullFreqFusion) for module in head.modules()) == len(strides) - 1
    assert all(isinstance(block, TimestepResidualBlock) for block in head.refine)
    assert head(random_batch(spec, 2)).shape == (2, 2, 32, 32)


def test_gradients_reach_every_parameter_of_the_release_options():
    spec = _spec()
    head = build_head("tsfreqagg", spec, **RELEASE, **SMALL)
    target = torch.randint(0, 2, (2, 32, 32), generator=torch.Generator().manual_seed(1))
    F.cross_entropy(head(random_batch(spec, 2)), target).backward()
    for name, parameter in head.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_timestep_residual_blocks_normalise_each_timestep_with_its_own_gain():
    block = TimestepResidualBlock(channels=4, num_timesteps=2).eval()
    torch.nn.init.normal_(block.norm2.gain.weight)
    x = torch.randn(1, 4, 5, 5).expand(2, 4, 5, 5)
    out = block(x, torch.tensor([0, 1]))
    assert not torch.allclose(out[0], out[1])
    plain = ResidualBlock(channels=4).eval()
    torch.testing.assert_close(plain(x, torch.tensor([0, 1]))[0], plain(x, torch.tensor([0, 1]))[1])


def test_release_options_give_the_whole_canvas_logits_tile_by_tile():
    spec = _spec(canvas=512)
    head = build_head("tsfreqagg", spec, seed=1, **RELEASE, **SMALL).eval()
    torch.manual_seed(0)
    for fusion in head.fusions:  # offsets at their bound nearly everywhere: the widest receptive field
        torch.nn.init.normal_(fusion.resampler.fine_offset.weight, std=1.0)
    batch = random_batch(spec, 1)
    with torch.no_grad():
        assert fusion.resampler.offsets(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 16, 16)).abs().max() > 1.9
        whole = head(batch)
        tiled = tiled_logits(head, batch, spec, side=384, context=96)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_a_record_from_before_the_release_options_builds_the_head_it_trained():
    old = {"width": 8, "dropout": 0.2, "kernel_channels": 4, "upsample_kernel": 5, "highpass_kernel": 3,
           "image_refine": 0, "subpixel": True, "fusion": "freqfusion", "gate": "pixel"}
    params = recorded_head_params("tsfreqagg", old)
    assert params["residual_norm"] == "batch"
    default = build_head("tsfreqagg", _spec(), **SMALL)
    assert build_head("tsfreqagg", _spec(), **params).state_dict().keys() == default.state_dict().keys()


def test_expert_logits_are_what_the_gate_mixes():
    spec = _spec()
    head = build_head("tsfreqagg", spec, gate="mean", **SMALL).eval()
    batch = random_batch(spec, 2)
    with torch.no_grad():
        experts = head.expert_logits(batch)
        assert experts.shape == (2, 2, 2, 32, 32)
        torch.testing.assert_close(experts.mean(dim=1), head(batch), atol=1e-5, rtol=0)
