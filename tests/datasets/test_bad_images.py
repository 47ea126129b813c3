"""Images that cannot be used end in one DatasetError naming the file, before anything of them is cached."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgss.datasets import get_dataset, read_image
from dgss.errors import DatasetError
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore


def _folder(root: Path, datasets_tree) -> Path:
    folder = datasets_tree(root / "mine", {"images/a.png": "image", "images/b.png": "image",
                                           "labels/a.png": "label", "labels/b.png": "label"})
    Image.fromarray(np.zeros((32, 40, 3), dtype=np.uint8)).save(folder / "images" / "b.png")
    return folder


def test_a_black_image_is_refused_by_name(tmp_path, datasets_tree):
    reader = get_dataset(f"folder:{_folder(tmp_path, datasets_tree)}")
    with pytest.raises(DatasetError, match=r"b\.png: empty field of view: is the image black\?"):
        reader.read("b")
    assert any("b.png" in problem for problem in reader.check())


def test_extraction_refuses_a_black_image_before_writing_it(tmp_path, datasets_tree, extract_model_dir):
    dataset = f"folder:{_folder(tmp_path, datasets_tree)}"
    store = tmp_path / "s.zarr"
    with pytest.raises(DatasetError, match="b.png"):
        run_extraction(ExtractionRequest(dataset=dataset, store=store, model=str(extract_model_dir), timesteps=(10,)))
    entry = FeatureStore(store, create=False).entry(dataset)
    assert entry.done().tolist() == [True, False]
    assert not list((store / entry.group.path / "image" / "c").glob("1*"))


def test_an_image_over_pillows_pixel_limit_names_the_file_and_the_way_past(tmp_path, datasets_write, monkeypatch):
    path = datasets_write(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DatasetError, match=r"huge\.png.*resize it.*DGSS_MAX_IMAGE_PIXELS"):
        read_image(path)
