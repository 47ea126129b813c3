"""T&S-FreqAgg's ablation switches: each takes out what it names, and old runs keep the method's parts."""

import pytest
import torch
import torch.nn.functional as F

from dgss.aggregate.heads import build_head, parse_head_params, recorded_head_params
from dgss.aggregate.heads.freqfusion import AdaptiveHighPass, AdaptiveUpsample, BilinearFusion, FreqFusion
from dgss.aggregate.heads.tsfreqagg import MeanGate, TimeGate
from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.errors import ModelError
from head_batches import random_batch

SMALL = {"width": 8, "kernel_channels": 4}


def _spec(bands: str = "haar", timesteps: tuple[int, ...] = (10, 100, 500)) -> CacheSpec:
    levels = (("coarse", 8), ("middle", 16), ("fine", 32))
    blocks = tuple(BlockSpec(name=f"up_blocks.{i}", channels=3, height=size, width=size, level=level)
                   for i, (level, size) in enumerate(levels))
    return CacheSpec(blocks=blocks, timesteps=timesteps, bands=bands, canvas_size=32)


def _parts(head: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(module, kind) for module in head.modules())


@pytest.mark.parametrize("bands", ["haar", "none"])
def test_bilinear_fusion_has_no_frequency_aware_part(bands):
    spec = _spec(bands)
    default = build_head("tsfreqagg", spec, **SMALL)
    plain = build_head("tsfreqagg", spec, fusion="bilinear", **SMALL)
    assert _parts(default, FreqFusion) == 2 and _parts(default, AdaptiveHighPass) == 2
    assert _parts(plain, BilinearFusion) == 2
    assert _parts(plain, FreqFusion) == _parts(plain, AdaptiveUpsample) == _parts(plain, AdaptiveHighPass) == 0
    assert plain(random_batch(spec, 2)).shape == (2, 2, 32, 32)


def test_bilinear_fusion_is_upsampling_plus_addition():
    coarse, smooth, detail = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    up = F.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.equal(BilinearFusion()(coarse, smooth, detail), up + smooth + detail)
    assert torch.equal(BilinearFusion()(coarse, smooth), up + smooth)  # raw maps: one branch, added once


def test_mean_gate_is_the_plain_mean_of_the_per_timestep_logits():
    logits = torch.randn(2, 3, 2, 5, 5)
    mixed, weights = MeanGate()(logits)
    assert torch.allclose(mixed, logits.mean(dim=1)) and torch.allclose(weights, torch.full((2, 3, 5, 5), 1 / 3))
    head = build_head("tsfreqagg", _spec(), gate="mean", **SMALL).eval()
    assert _parts(head, TimeGate) == 0 and isinstance(head.time_gate, MeanGate)
    with torch.no_grad():
        _, gates = head.forward_with_gates(random_batch(_spec(), 1))
    assert torch.allclose(gates, torch.full_like(gates, 1 / 3))


def test_pixel_gate_weights_differ_from_pixel_to_pixel():
    head = build_head("tsfreqagg", _spec(), **SMALL).eval()
    with torch.no_grad():
        _, gates = head.forward_with_gates(random_batch(_spec(), 1))
    assert isinstance(head.time_gate, TimeGate) and gates.std(dim=(2, 3)).min() > 0


def test_single_gate_reads_one_timestep_and_refuses_more():
    with pytest.raises(ModelError, match="gate=single reads one timestep.*--timesteps"):
        build_head("tsfreqagg", _spec(), gate="single", **SMALL)
    spec = _spec(timesteps=(250,))
    single = build_head("tsfreqagg", spec, gate="single", **SMALL).eval()
    assert not any("time_gate" in name for name, _ in single.named_parameters())
    with torch.no_grad():
        logits, gates = single.forward_with_gates(random_batch(spec, 2))
    assert logits.shape == (2, 2, 32, 32) and torch.equal(gates, torch.ones_like(gates))


def test_switch_values_are_checked_and_listed():
    assert parse_head_params("tsfreqagg", ["gate=mean", "fusion=bilinear"]) == {"gate": "mean", "fusion": "bilinear"}
    with pytest.raises(ModelError, match="pixel, mean, single"):
        parse_head_params("tsfreqagg", ["gate=median"])
    with pytest.raises(ModelError, match="freqfusion, bilinear"):
        parse_head_params("tsfreqagg", ["fusion=nearest"])


def test_a_record_from_before_the_switches_builds_the_heads_it_trained():
    old = {"width": 8, "dropout": 0.2, "kernel_channels": 4, "upsample_kernel": 5, "highpass_kernel": 3,
           "image_refine": 0, "subpixel": True}
    params = recorded_head_params("tsfreqagg", old)
    assert params["gate"] == "pixel" and params["fusion"] == "freqfusion"
    default = build_head("tsfreqagg", _spec(), **SMALL)
    assert build_head("tsfreqagg", _spec(), **params).state_dict().keys() == default.state_dict().keys()
