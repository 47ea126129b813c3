"""A common pixels-per-degree canvas (`--canvas-field-deg`): config and key, geometry round trip, end to end."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from dgss.datasets import get_dataset
from dgss.errors import ModelError
from dgss.extract.config import ExtractionConfig
from dgss.extract.extractor import FeatureExtractor, canvas_fill, make_config
from dgss.extract.preprocess import to_canvas
from dgss.pipelines.cli import main
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore, config_key
from dgss.store.geometry import Geometry

DATASET = "SYNTH-A-4x64"
# The key this config had before `canvas_field_deg` existed: stores made then must still be found.
KEY_BEFORE_THE_OPTION = "6a8f31b39cc109c1"


def _config(**options) -> ExtractionConfig:
    return ExtractionConfig(
        model_digest="0" * 64, blocks=("up_blocks.1",), timesteps=(10, 500), input_size=32, canvas_size=32, **options
    )


def test_a_config_without_a_field_angle_keeps_its_key():
    config = _config()
    data = config.to_dict()
    assert "canvas_field_deg" not in data
    assert config.key() == config_key(data) == KEY_BEFORE_THE_OPTION
    assert ExtractionConfig.from_dict(data) == config


def test_a_field_angle_is_part_of_the_key_and_round_trips():
    config = _config(canvas_field_deg=45)
    assert config.canvas_field_deg == 45.0 and config.to_dict()["canvas_field_deg"] == 45.0
    assert config.key() == _config(canvas_field_deg=45.0).key() != _config().key()
    assert config.key() != _config(canvas_field_deg=50.0).key()
    assert ExtractionConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("degrees", [0, -30.0, float("nan"), float("inf"), "45", True])
def test_a_field_angle_that_is_not_a_positive_number_is_one_line(degrees):
    with pytest.raises(ModelError, match="canvas_field_deg|canvas field angle") as raised:
        _config(canvas_field_deg=degrees)
    assert "\n" not in str(raised.value)


def test_canvas_fill_is_the_field_angle_ratio_capped_at_one():
    assert canvas_fill(None, None) == canvas_fill(None, 30.0) == 1.0
    assert canvas_fill(45.0, 30.0) == pytest.approx(2 / 3)
    assert canvas_fill(45.0, 45.0) == canvas_fill(45.0, 60.0) == 1.0  # a wider camera is fitted, not cropped
    with pytest.raises(ModelError, match="pass field_of_view_deg"):
        canvas_fill(45.0, None)
    with pytest.raises(ModelError, match="image field angle 0"):
        canvas_fill(45.0, 0)


def test_image_arrays_need_the_camera_s_field_angle_when_the_config_spans_one(extract_backbone):
    config = make_config(extract_backbone, timesteps=[10], canvas_field_deg=90.0)
    sample = get_dataset(DATASET).read("synthA_000")
    with pytest.raises(ModelError, match="field_of_view_deg"):
        FeatureExtractor(extract_backbone, config).image_arrays(sample, (64, 64))


def test_fill_centres_a_smaller_fov_and_maps_back_to_native():
    yy, xx = np.mgrid[:100, :140]
    fov = (yy - 50) ** 2 + (xx - 70) ** 2 <= 40**2  # an 81 px disc in a wide image
    image = np.repeat(fov[..., None], 3, axis=2).astype(np.uint8) * 200
    canvas = to_canvas(image, fov & (abs(yy - 50) < 2), fov, canvas_size=100, fill=0.6)
    geometry = canvas.geometry
    assert (geometry.scaled_height, geometry.scaled_width, geometry.pad_top, geometry.pad_left) == (60, 60, 20, 20)
    rows, cols = np.flatnonzero(canvas.fov.any(axis=1)), np.flatnonzero(canvas.fov.any(axis=0))
    # the disc's tips cover under half a canvas pixel, so the mask is a pixel short at each end
    assert abs(rows[-1] - rows[0] + 1 - 60) <= 2 and abs(cols[-1] - cols[0] + 1 - 60) <= 2
    assert abs((rows[0] + rows[-1]) / 2 - 49.5) <= 1 and abs((cols[0] + cols[-1]) / 2 - 49.5) <= 1
    back = geometry.to_native(canvas.fov)
    edge = ndimage.binary_dilation(fov, iterations=2) & ~ndimage.binary_erosion(fov, iterations=2)
    assert back.shape == fov.shape and not ((back ^ fov) & ~edge).any()


def test_fill_one_is_the_default_and_fill_outside_0_1_is_refused():
    assert Geometry.fit((100, 140), (10, 20, 50, 100), 64) == Geometry.fit((100, 140), (10, 20, 50, 100), 64, 1.0)
    for fill in (0.0, 1.5):
        with pytest.raises(ValueError, match="fill"):
            Geometry.fit((100, 140), (10, 20, 50, 100), 64, fill)


def _fov_areas(store: Path, key: str) -> np.ndarray:
    entry = FeatureStore(store, create=False).entry(DATASET, key)
    return np.array([entry.read("fov", index).sum() for index in range(len(entry.image_ids))])


def test_twice_the_camera_s_field_angle_quarters_the_stored_fov(extract_model_dir, tmp_path, monkeypatch, capsys):
    store = tmp_path / "features.zarr"
    filled = run_extraction(ExtractionRequest(dataset=DATASET, store=store, model=str(extract_model_dir),
                                              timesteps=(10,)))
    degrees = 2 * get_dataset(DATASET).field_of_view_deg
    monkeypatch.setattr(sys, "argv", ["dgss", "extract", "--dataset", DATASET, "--store", str(store), "--model",
                                      str(extract_model_dir), "--timesteps", "10", "--canvas-field-deg", str(degrees)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0, capsys.readouterr().err
    keys = {info.key for info in FeatureStore(store, create=False).entries()}
    spanned = (keys - {filled.key}).pop()
    assert len(keys) == 2
    assert FeatureStore(store, create=False).entry(DATASET, spanned).config["canvas_field_deg"] == degrees
    ratio = _fov_areas(store, spanned) / _fov_areas(store, filled.key)
    assert np.all(np.abs(ratio - 0.25) < 0.03), ratio
