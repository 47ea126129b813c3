import dataclasses

import numpy as np
import pytest

from dgss.datasets import Sample
from dgss.errors import ModelError
from dgss.extract.config import ExtractionConfig
from dgss.extract.extractor import FeatureExtractor, make_config
from dgss.store import FeatureStore
from dgss.store.geometry import Geometry

MAX_NATIVE = (50, 60)


def _sample(index: int = 0) -> Sample:
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[:40, :56]
    fov = (yy - 20) ** 2 + (xx - 28) ** 2 <= 19**2
    image = (rng.random((40, 56, 3)) * 255 * fov[..., None]).astype(np.uint8)
    return Sample(id=f"im{index}", image=image, vessel=fov & (np.abs(yy - xx) < 2), fov=fov, split="test")


@pytest.fixture(scope="module")
def extract_config(extract_backbone) -> ExtractionConfig:
    return make_config(extract_backbone, timesteps=[3, 25, 500])


def test_make_config_defaults(extract_backbone, extract_config):
    assert extract_config.blocks == ("mid_block", "up_blocks.0", "up_blocks.2")
    assert extract_config.input_size == extract_config.canvas_size == 32
    assert extract_config.model_digest == extract_backbone.digest
    default = make_config(extract_backbone, canvas_size=32, tile_overlap=8)
    assert default.timesteps == (0, 3, 13, 25, 125, 250, 500, 875) and default.tile_overlap == 0
    assert ExtractionConfig.from_dict(extract_config.to_dict()) == extract_config
    assert len(extract_config.key()) == 16
    assert dataclasses.replace(extract_config, mode="ddim").key() != extract_config.key()


def test_make_config_rejects_bad_values(extract_backbone):
    with pytest.raises(ModelError, match="valid blocks"):
        make_config(extract_backbone, blocks=["up_blocks.7"])
    with pytest.raises(ModelError, match="timestep 1000"):
        make_config(extract_backbone, timesteps=[1000])
    with pytest.raises(ModelError, match="mode must be one of anchored, ddim, noised, got 'fancy'"):
        make_config(extract_backbone, mode="fancy")
    with pytest.raises(ModelError, match="draws 4"):
        make_config(extract_backbone, draws=4)
    with pytest.raises(ModelError, match="inversion steps 50: only mode ddim"):
        make_config(extract_backbone, inversion_steps=50)
    with pytest.raises(ModelError, match="inversion steps 1001: use 1..1000"):
        make_config(extract_backbone, mode="ddim", inversion_steps=1001)


def test_entry_layout(extract_backbone, extract_config):
    extractor = FeatureExtractor(extract_backbone, extract_config)
    arrays = extractor.entry_arrays(MAX_NATIVE)
    assert arrays["features/mid_block"].shape == (3, 4, 32, 4, 4)
    assert arrays["features/up_blocks.2"].dims == (
        "timestep", "band", "up_blocks.2.channel", "up_blocks.2.y", "up_blocks.2.x"
    )
    assert arrays["native_vessel"].shape == MAX_NATIVE
    assert extractor.entry_coords()["band"] == ["LL", "LH", "HL", "HH"]
    attrs = extractor.entry_attrs()
    assert attrs["levels"] == {"coarse": ["mid_block"], "middle": ["up_blocks.0"], "fine": ["up_blocks.2"]}
    assert attrs["blocks"][0] == {"name": "mid_block", "channels": 32, "height": 8, "width": 8}


@pytest.mark.parametrize("mode", ["anchored", "ddim"])
def test_image_arrays_match_specs_and_repeat_bytes(extract_backbone, extract_config, mode):
    extractor = FeatureExtractor(extract_backbone, dataclasses.replace(extract_config, mode=mode))
    specs = extractor.entry_arrays(MAX_NATIVE)
    first = extractor.image_arrays(_sample(), MAX_NATIVE)
    second = extractor.image_arrays(_sample(), MAX_NATIVE)
    assert set(first) == set(specs)
    for name, spec in specs.items():
        assert first[name].shape == spec.shape and first[name].dtype == np.dtype(spec.dtype), name
        assert first[name].tobytes() == second[name].tobytes(), name
    assert np.array_equal(first["native_fov"][:40, :56], _sample().fov) and not first["native_fov"][40:].any()
    assert Geometry.from_array(first["geometry"]).native_shape == (40, 56)


def test_tiled_canvas_has_canvas_level_maps(extract_backbone):
    config = make_config(
        extract_backbone, blocks=["mid_block", "up_blocks.2"], timesteps=[25], bands="none",
        canvas_size=48, tile_overlap=16,
    )
    extractor = FeatureExtractor(extract_backbone, config)
    assert extractor.tile_starts == [0, 16]
    arrays = extractor.image_arrays(_sample(), MAX_NATIVE)
    assert arrays["features/mid_block"].shape == (1, 1, 32, 12, 12)
    assert arrays["features/up_blocks.2"].shape == (1, 1, 16, 48, 48)
    assert arrays["image"].shape == (48, 48, 3)


def test_extractor_refuses_mismatches(extract_backbone, extract_x0_backbone, extract_config):
    with pytest.raises(ModelError, match="model digest"):
        FeatureExtractor(extract_x0_backbone, extract_config)
    with pytest.raises(ModelError, match="canvas size 36 is not a multiple of 8"):
        FeatureExtractor(extract_backbone, dataclasses.replace(extract_config, canvas_size=36, tile_overlap=8))


def test_arrays_write_to_the_store(tmp_path, extract_backbone, extract_config):
    extractor = FeatureExtractor(extract_backbone, extract_config)
    entry = FeatureStore(tmp_path / "store").require_entry(
        dataset="TINY", config=extract_config.to_dict(), image_ids=["im0"], splits=["test"],
        arrays=extractor.entry_arrays(MAX_NATIVE), coords=extractor.entry_coords(), attrs=extractor.entry_attrs(),
    )
    arrays = extractor.image_arrays(_sample(), MAX_NATIVE)
    entry.write_image(0, arrays)
    assert np.array_equal(entry.read("features/up_blocks.0", 0), arrays["features/up_blocks.0"])
