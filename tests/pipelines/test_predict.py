"""`dgss predict`: new image files -> probability, mask and overlay at their native size, with the run's backbone."""

import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.extract.datasets import get_dataset
from dgss.pipelines.cli import main
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.pipelines.predict import predict_images
from dgss.store.errors import DgssError, ModelError

DATASET = "SYNTH-A-4x64"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, extract_model_dir):
    root = tmp_path_factory.mktemp("predict")
    run_extraction(ExtractionRequest(dataset=DATASET, store=root / "f.zarr", model=str(extract_model_dir), timesteps=(10,)))
    config = HeadTrainingConfig(head="tsfreqagg", head_params={"width": 8}, epochs=1)
    return fit_head(root / "f.zarr", [DATASET], root / "run", config)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A synthetic fundus photo written as a non-square JPEG, as a user's camera would give it."""
    image = get_dataset("SYNTH-B-4x64").read("synthB_000").image
    path = tmp_path_factory.mktemp("photos") / "patient.7.jpg"
    Image.fromarray(np.pad(image, ((0, 0), (10, 6), (0, 0)))).save(path)
    return path


def test_predict_writes_native_size_probability_mask_and_overlay(trained_run, photo, tmp_path):
    (written,) = predict_images(trained_run, [photo], tmp_path / "out")
    assert written.mask.name == "patient.7_mask.png"
    native = Image.open(photo).size
    for path in (written.probability, written.mask, written.overlay):
        assert Image.open(path).size == native
    assert set(np.unique(np.asarray(Image.open(written.mask)))) <= {0, 255}


def test_predict_is_deterministic(trained_run, photo, tmp_path):
    first = predict_images(trained_run, [photo], tmp_path / "a")[0]
    second = predict_images(trained_run, [photo], tmp_path / "b")[0]
    assert Image.open(first.probability).tobytes() == Image.open(second.probability).tobytes()


def test_another_backbone_is_refused(trained_run, photo, tmp_path, extract_model_dir):
    other = tmp_path / "other"
    shutil.copytree(extract_model_dir, other)
    (other / "scheduler_config.json").write_text((other / "scheduler_config.json").read_text().replace("1000", "999"))
    with pytest.raises(ModelError, match="is not the one run"):
        predict_images(trained_run, [photo], tmp_path / "out", model=str(other))


def test_an_unreadable_image_is_one_line(trained_run, tmp_path, capsys, monkeypatch):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    monkeypatch.setattr(sys, "argv", ["dgss", "predict", "--run", str(trained_run), "--out", str(tmp_path / "o"), str(broken)])
    with pytest.raises(SystemExit) as exited:
        main()
    error = capsys.readouterr().err.strip()
    assert exited.value.code == 1 and "broken.png" in error and len(error.splitlines()) == 1


def test_two_inputs_with_one_stem_are_refused_before_any_work(trained_run, photo, tmp_path):
    copy = tmp_path / "other" / photo.name
    copy.parent.mkdir()
    shutil.copy(photo, copy)
    with pytest.raises(DgssError, match=f"{photo} and {copy} would both write patient.7_"):
        predict_images(trained_run, [photo, copy], tmp_path / "out")
    assert not (tmp_path / "out").exists()
