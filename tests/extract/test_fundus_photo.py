"""Photos that cannot be a fundus photo (one colour, no field of view, a field of view too small for the canvas) are
refused by name, by extraction and by `dgss predict` alike, before the model sees them."""

import numpy as np
import pytest
from PIL import Image

from dgss.datasets import Sample
from dgss.errors import DatasetError
from dgss.extract.extractor import FeatureExtractor, make_config
from dgss.extract.preprocess import MAX_UPSCALE, check_fundus_photo
from dgss.pipelines.cli import main

CANVAS = 512


def _disc(side: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:side, :side]
    fov = (yy - side / 2 + 0.5) ** 2 + (xx - side / 2 + 0.5) ** 2 <= (side / 2) ** 2
    image = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8) * fov[..., None]
    return image.astype(np.uint8), fov


@pytest.mark.parametrize(("image", "fov", "why"), [
    (np.full((1, 1, 3), 200, np.uint8), np.ones((1, 1), bool), "one colour"),
    (np.full((600, 800, 3), 128, np.uint8), np.ones((600, 800), bool), "one colour"),
    (np.zeros((600, 800, 3), np.uint8), np.zeros((600, 800), bool), "one colour"),
    (_disc(600)[0], np.zeros((600, 600), bool), "no field of view"),
    (*_disc(CANVAS // MAX_UPSCALE - 1), "too small for the 512 px canvas"),
])
def test_a_photo_that_cannot_be_a_fundus_is_refused_by_name(image, fov, why):
    with pytest.raises(DatasetError, match=why) as refused:
        check_fundus_photo(image, fov, CANVAS, "photo.png")
    assert str(refused.value).startswith("photo.png") and "\n" not in str(refused.value)


def test_the_smallest_field_of_view_the_canvas_takes_is_accepted():
    check_fundus_photo(*_disc(CANVAS // MAX_UPSCALE), CANVAS, "photo.png")


def test_extraction_refuses_a_photo_too_small_for_its_canvas(extract_backbone):
    extractor = FeatureExtractor(extract_backbone, make_config(extract_backbone, timesteps=[3]))
    image, fov = _disc(2)
    sample = Sample(id="tiny", image=image, vessel=np.zeros_like(fov), fov=fov, split="test")
    with pytest.raises(DatasetError, match="image 'tiny'.*too small"):
        extractor.image_arrays(sample, (2, 2))


def test_predict_refuses_a_one_pixel_photo_by_name(tmp_path, monkeypatch, capsys, extract_model_dir):
    from dgss.aggregate.training import HeadTrainingConfig, fit_head
    from dgss.pipelines.extract_job import ExtractionRequest, run_extraction

    run_extraction(ExtractionRequest(dataset="SYNTH-A-2x32", store=tmp_path / "f.zarr", model=str(extract_model_dir),
                                     timesteps=(10,)))
    run = fit_head(tmp_path / "f.zarr", ["SYNTH-A-2x32"], tmp_path / "run",
                   HeadTrainingConfig(head="mlp", head_params={"hidden": (4,)}, epochs=1, validation_fraction=0))
    Image.new("RGB", (1, 1), (180, 60, 20)).save(tmp_path / "dot.png")
    monkeypatch.setattr("sys.argv", ["dgss", "predict", "--run", str(run), "--out", str(tmp_path / "out"),
                                     str(tmp_path / "dot.png")])
    with pytest.raises(SystemExit) as exited:
        main()
    error = capsys.readouterr().err
    assert exited.value.code == 1 and "dot.png" in error and error.count("\n") == 1, error
    assert not list((tmp_path / "out").glob("dot_*"))
