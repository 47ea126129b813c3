"""Anchored timesteps batched into one network call give the features of one call per timestep."""

import pytest
import torch

from dgss.extract.blocks import tap_blocks
from dgss.extract.features import PIXELS_PER_CALL, default_timestep_batch, extract_features

BLOCKS = ["mid_block", "up_blocks.0", "up_blocks.2"]
STEPS = [0, 3, 13, 25, 125, 250, 500, 875]


@pytest.fixture(scope="module")
def extract_two_images() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1


def _one_call_per_timestep(backbone, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reference, written without the batching code: per block, (batch, timestep, channel, y, x)."""
    with torch.inference_mode(), tap_blocks(backbone.network, BLOCKS) as outputs:
        for step in STEPS:
            backbone.network(images, torch.full((len(images),), step))
    return {name: torch.stack(maps, dim=1) for name, maps in outputs.items()}


@pytest.mark.parametrize(("timestep_batch", "calls"), [(1, 8), (3, 3), (8, 1), (None, 1)])
def test_batched_equals_one_call_per_timestep(extract_backbone, extract_two_images, timestep_batch, calls):
    seen = []
    handle = extract_backbone.network.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    try:
        features = extract_features(
            extract_backbone, extract_two_images, blocks=BLOCKS, timesteps=STEPS, timestep_batch=timestep_batch
        )
    finally:
        handle.remove()
    assert features.passes == len(STEPS) and features.calls == len(seen) == calls
    assert sum(seen) == len(STEPS) * len(extract_two_images)  # rows: every (image, timestep) once
    reference = _one_call_per_timestep(extract_backbone, extract_two_images)
    for name in BLOCKS:
        assert features.maps[name].shape == reference[name].shape
        torch.testing.assert_close(features.maps[name], reference[name], rtol=1e-5, atol=1e-5)


def test_default_batches_small_inputs_only():
    assert default_timestep_batch(torch.zeros(2, 3, 32, 32)) == PIXELS_PER_CALL // (2 * 32 * 32)
    assert default_timestep_batch(torch.zeros(1, 3, 64, 64)) == 4
    assert default_timestep_batch(torch.zeros(1, 3, 128, 128)) == 1
    assert default_timestep_batch(torch.zeros(4, 3, 512, 512)) == 1


def test_timestep_batch_must_be_positive(extract_backbone, extract_two_images):
    with pytest.raises(ValueError, match="timestep_batch 0"):
        extract_features(extract_backbone, extract_two_images, blocks=BLOCKS, timesteps=STEPS, timestep_batch=0)
