"""Timesteps are normalised in the config itself, so no path caches a step twice or labels data with the wrong step."""

import pytest

from dgss.backbone.loading import load_backbone
from dgss.errors import ModelError
from dgss.extract.config import ExtractionConfig
from dgss.extract.extractor import FeatureExtractor


def _config(timesteps, **options) -> ExtractionConfig:
    return ExtractionConfig(model_digest="0" * 64, blocks=("up_blocks.1",), timesteps=timesteps, input_size=32,
                            canvas_size=32, **options)


def test_duplicate_and_unsorted_timesteps_give_one_key():
    assert _config((500, 10, 10)).timesteps == (10, 500)
    assert _config([500, 10, 10], mode="ddim").key() == _config((10, 500), mode="ddim").key()


def test_from_dict_normalises_too():
    data = {**_config((10, 500)).to_dict(), "timesteps": [500, 10, 500]}
    assert ExtractionConfig.from_dict(data).timesteps == (10, 500)


@pytest.mark.parametrize("bad", [(10, "500"), (True, 10), (10.5,)])
def test_non_integer_timesteps_are_refused(bad):
    with pytest.raises(ModelError, match="integers"):
        _config(bad)


def test_ddim_coords_through_the_api_follow_the_data(extract_model_dir):
    backbone = load_backbone(str(extract_model_dir), "cpu")
    config = ExtractionConfig(model_digest=backbone.digest, blocks=("up_blocks.1",), timesteps=(500, 10),
                              mode="ddim", input_size=32, canvas_size=32)
    assert FeatureExtractor(backbone, config).entry_coords()["timestep"] == [10, 500]
