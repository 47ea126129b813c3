"""DDIM along a fine path (`--inversion-steps`) and noise draws (`--draws`): the path, the passes it costs, the
features it reads, and the keys of configs from before both options."""

import pytest
import torch

from dgss.extract.blocks import tap_blocks
from dgss.extract.config import ExtractionConfig, default_timesteps
from dgss.extract.extractor import make_config
from dgss.extract.features import DEFAULT_INVERSION_STEPS, ddim_invert, extract_features, inversion_path
from dgss.errors import ModelError

BLOCKS = ["mid_block", "up_blocks.2"]
STEPS = [3, 25, 500]


@pytest.fixture(scope="module")
def inversion_images() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1


def test_the_default_path_of_the_paper_timesteps_holds_them_all_and_stops_at_the_last():
    cached = default_timesteps(1000)
    path = inversion_path(cached, DEFAULT_INVERSION_STEPS, 1000)
    assert cached == (0, 3, 13, 25, 125, 250, 500, 875)
    assert set(cached) <= set(path) and path == sorted(path) and path[-1] == 875
    assert len(path) == 50  # 0, 20, ..., 860 (44) plus 3, 13, 25, 125, 250, 875
    assert inversion_path(cached, None, 1000) == list(cached)  # configs without the option: the coarse path
    with pytest.raises(ValueError, match="inversion_steps 1001"):
        inversion_path(cached, 1001, 1000)


def test_fine_ddim_reads_the_cached_timesteps_of_the_whole_inversion(extract_backbone, inversion_images):
    path = inversion_path(STEPS, 50, 1000)
    calls = []
    handle = extract_backbone.network.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        fine = extract_features(extract_backbone, inversion_images, blocks=BLOCKS, timesteps=STEPS, mode="ddim",
                                inversion_steps=50)
    finally:
        handle.remove()
    assert fine.passes == fine.calls == len(calls) == len(path) == 28  # 0, 20, ..., 500 and 3, 25
    assert fine.maps["up_blocks.2"].shape == (1, 3, 16, 32, 32)
    with torch.inference_mode(), tap_blocks(extract_backbone.network, ["up_blocks.2"]) as outputs:
        ddim_invert(extract_backbone, inversion_images, path)
    for index, step in enumerate(STEPS):
        assert torch.equal(fine.maps["up_blocks.2"][:, index], outputs["up_blocks.2"][path.index(step)])
    coarse = extract_features(extract_backbone, inversion_images, blocks=BLOCKS, timesteps=STEPS, mode="ddim")
    assert coarse.passes == len(STEPS)
    assert not torch.allclose(fine.maps["mid_block"][:, 2], coarse.maps["mid_block"][:, 2])


def _config(**options) -> ExtractionConfig:
    return ExtractionConfig(model_digest="0" * 64, blocks=("up_blocks.1",), timesteps=(10, 500), input_size=32,
                            canvas_size=32, **options)


# Keys computed before `draws` was renamed from `ensemble` and `inversion_steps` existed: stores made then must
# still be found.
KEYS_BEFORE = {"anchored": "6a8f31b39cc109c1", "noised": "cc3d34a24dab1709", "ddim": "ef88c9eef1b891bb"}


def test_configs_from_before_draws_and_inversion_steps_keep_their_keys():
    noised = _config(mode="noised", draws=3, seed=2)
    assert noised.to_dict()["ensemble"] == 3 and "draws" not in noised.to_dict()
    assert noised.key() == KEYS_BEFORE["noised"] and ExtractionConfig.from_dict(noised.to_dict()) == noised
    assert _config().key() == KEYS_BEFORE["anchored"] and "inversion_steps" not in _config().to_dict()
    coarse = _config(mode="ddim")
    assert coarse.key() == KEYS_BEFORE["ddim"] and coarse.inversion_steps is None
    fine = _config(mode="ddim", inversion_steps=50)
    assert fine.key() != coarse.key() and ExtractionConfig.from_dict(fine.to_dict()) == fine
    with pytest.raises(ModelError, match="only mode ddim inverts"):
        _config(inversion_steps=50)


def test_make_config_gives_ddim_the_fine_path_by_default(extract_backbone):
    assert make_config(extract_backbone, mode="ddim").inversion_steps == DEFAULT_INVERSION_STEPS
    assert make_config(extract_backbone, mode="ddim", inversion_steps=10).inversion_steps == 10
    assert make_config(extract_backbone).inversion_steps is None
