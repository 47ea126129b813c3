"""Heads: output shapes for several cache layouts, gradients, time gate, conditional BN, registry and learning."""

import json

import pytest
import torch
import torch.nn.functional as F

from dgss.aggregate.heads import HEAD_NAMES, build_head, head_config, parse_head_params
from dgss.aggregate.heads.conditional_norm import TimestepConditionalBatchNorm2d
from dgss.aggregate.spec import BlockSpec, CacheSpec
from head_batches import random_batch
from dgss.errors import ConfigMismatchError, DgssError, ModelError

SMALL = {"tsfreqagg": {"width": 8, "kernel_channels": 4}, "mlp": {"hidden": [8, 4]},
         "unet": {"base_channels": 4, "depth": 2}}


def _spec(bands: str, layout: str) -> CacheSpec:
    """Tiny specs: three levels with a shared coarse size, two levels x4 apart, one level, and x3 apart."""
    sizes = {"three": [("coarse", 3, 8), ("coarse", 2, 8), ("middle", 4, 16), ("fine", 2, 32)],
             "x4": [("coarse", 4, 8), ("fine", 3, 32)],
             "one": [("fine", 5, 16)],
             "x3": [("coarse", 3, 4), ("fine", 2, 12)]}[layout]
    blocks = tuple(BlockSpec(name=f"block{i}", channels=c, height=s, width=s, level=level)
                   for i, (level, c, s) in enumerate(sizes))
    return CacheSpec(blocks=blocks, timesteps=(10, 100), bands=bands, canvas_size=32)


@pytest.mark.parametrize("layout", ["three", "x4", "one", "x3"])
@pytest.mark.parametrize("bands", ["haar", "none"])
@pytest.mark.parametrize("name", ["tsfreqagg", "mlp"])
def test_feature_head_output_shape(name, bands, layout):
    spec = _spec(bands, layout)
    head = build_head(name, spec, **SMALL[name])
    assert head.uses_features
    assert head(random_batch(spec, 2)).shape == (2, 2, 32, 32)


def test_unet_output_shape_and_canvas_check():
    spec = _spec("none", "one")
    head = build_head("unet", spec, **SMALL["unet"])
    assert not head.uses_features
    assert head({"image": torch.rand(2, 3, 32, 32)}).shape == (2, 2, 32, 32)
    with pytest.raises(DgssError, match="divisible"):
        build_head("unet", spec, base_channels=4, depth=6)


@pytest.mark.parametrize(("name", "bands"), [("tsfreqagg", "haar"), ("tsfreqagg", "none"), ("mlp", "haar"),
                                             ("unet", "none")])
def test_gradients_reach_every_parameter(name, bands):
    spec = _spec(bands, "three")
    head = build_head(name, spec, **SMALL[name])
    target = torch.randint(0, 2, (2, 32, 32), generator=torch.Generator().manual_seed(1))
    F.cross_entropy(head(random_batch(spec, 2)), target).backward()
    for param_name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


def test_time_gate_weights_sum_to_one():
    spec = _spec("haar", "three")
    head = build_head("tsfreqagg", spec, **SMALL["tsfreqagg"]).eval()
    logits, gates = head.forward_with_gates(random_batch(spec, 2))
    assert logits.shape == (2, 2, 32, 32)
    assert gates.shape == (2, 2, 32, 32)  # sub-pixel logits: twice the head's 16 px map
    torch.testing.assert_close(gates.sum(dim=1), torch.ones(2, 32, 32))


def test_conditional_norm_uses_per_timestep_gain_and_bias():
    torch.manual_seed(0)
    norm = TimestepConditionalBatchNorm2d(3, num_timesteps=2).eval()
    torch.nn.init.normal_(norm.gain.weight)
    torch.nn.init.normal_(norm.bias.weight)
    x = torch.randn(1, 3, 4, 4).repeat(2, 1, 1, 1)
    out = norm(x, torch.tensor([0, 1]))
    assert not torch.allclose(out[0], out[1])
    for t in (0, 1):
        expected = norm.gain.weight[t, :, None, None] * norm.norm(x[t:t + 1])[0] + norm.bias.weight[t, :, None, None]
        torch.testing.assert_close(out[t], expected)


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_same_seed_same_weights(name):
    spec = _spec("haar", "three")
    state = torch.random.get_rng_state()
    first = build_head(name, spec, seed=3, **SMALL[name]).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    again = build_head(name, spec, seed=3, **SMALL[name]).state_dict()
    other = build_head(name, spec, seed=4, **SMALL[name]).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_config_round_trips_through_json(name):
    head = build_head(name, _spec("none", "x4"), **SMALL[name])
    assert head_config(name, **json.loads(json.dumps(head.config.to_dict()))) == head.config


def test_unknown_head_and_hparam_raise_listing_valid_ones():
    with pytest.raises(DgssError, match="mlp, tsfreqagg, unet"):
        build_head("segformer", _spec("none", "one"))
    with pytest.raises(DgssError, match="width"):
        build_head("tsfreqagg", _spec("none", "one"), widht=8)


def test_batch_from_another_cache_raises():
    head = build_head("tsfreqagg", _spec("haar", "x4"), **SMALL["tsfreqagg"])
    with pytest.raises(ConfigMismatchError, match="features/block0"):
        head(random_batch(_spec("none", "x4"), 2))


def test_tsfreqagg_overfits_one_batch():
    spec = _spec("haar", "x4")
    batch = random_batch(spec, 2)
    fine = batch["features/block1"][:, 0, 0, 0]
    target = (F.interpolate(fine[:, None], size=(32, 32), mode="nearest")[:, 0] > 0).long()
    head = build_head("tsfreqagg", spec, seed=0, width=16, kernel_channels=4)
    torch.manual_seed(0)  # dropout masks
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(head(batch), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_green_unet_reads_only_the_green_channel_inside_the_fov():
    spec = _spec("none", "three")
    head = build_head("unet", spec, base_channels=4, depth=2, channels="green", green_mean=0.4, green_std=0.1).eval()
    batch = random_batch(spec, 1)
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    batch["fov"] = (((y - 16) ** 2 + (x - 16) ** 2) < 14**2)[None]
    outside = ~batch["fov"]
    other = dict(batch, image=batch["image"].clone())
    other["image"][:, [0, 2]] = torch.rand_like(other["image"][:, [0, 2]])  # red and blue: anything
    other["image"][:, 1][outside] = torch.rand(int(outside.sum()))  # the black surround: anything
    with torch.no_grad():
        torch.testing.assert_close(head(other), head(batch))
        changed = dict(batch, image=batch["image"].clone())
        changed["image"][:, 1][~outside] += 0.1
        assert not torch.allclose(head(changed), head(batch))


def test_green_unet_without_fixed_statistics_standardises_each_image_by_its_own_fov():
    spec = _spec("none", "three")
    head = build_head("unet", spec, base_channels=4, depth=2, channels="green").eval()
    batch = random_batch(spec, 1)
    batch["fov"] = torch.zeros(1, 32, 32, dtype=torch.bool)
    batch["fov"][:, 4:28, 4:28] = True
    darker = dict(batch, image=batch["image"].clone())
    darker["image"][:, 1][batch["fov"]] = 0.5 * darker["image"][:, 1][batch["fov"]] + 0.1  # another exposure
    with torch.no_grad():
        torch.testing.assert_close(head(darker), head(batch), atol=1e-4, rtol=1e-4)
    with pytest.raises(ModelError, match="give both"):
        build_head("unet", spec, channels="green", green_mean=0.4)

def test_an_optional_head_parameter_takes_a_number_or_none_from_the_command_line():
    assert parse_head_params("unet", ["green_mean=0.35", "green_std=0.09"]) == {"green_mean": 0.35, "green_std": 0.09}
    assert parse_head_params("unet", ["green_mean=none", "green_std=None"]) == {"green_mean": None, "green_std": None}
    with pytest.raises(ModelError, match="green_mean must be a finite number or none"):
        parse_head_params("unet", ["green_mean=dark"])
