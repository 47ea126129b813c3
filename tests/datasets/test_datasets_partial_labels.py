"""Datasets labelled in part are read whole (an unlabelled image is a target to predict on); broken layouts and a
dataset with no label at all stay one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dgss.datasets import get_dataset
from dgss.datasets.overview import survey_datasets
from dgss.errors import DatasetError

Tree = Callable[[Path, dict[str, str]], Path]

HRF_GLAUCOMA_LABELS = {
    "images/01_g.jpg": "image",
    "images/01_h.jpg": "image",
    "images/02_dr.jpg": "image",
    "images/02_g.jpg": "image",
    "manual1/01_g.tif": "label",
    "manual1/02_g.tif": "label",
    "mask/01_g_mask.tif": "fov",
    "mask/01_h_mask.tif": "fov",
    "mask/02_g_mask.tif": "fov",
}
"""HRF downloaded with the glaucoma labels only; 02_dr has neither label nor FOV mask (its category's archives
are missing), 01_h has its mask."""


def test_a_partly_labelled_layout_is_read_whole(tmp_path: Path, datasets_tree: Tree) -> None:
    reader = get_dataset("HRF", datasets_tree(tmp_path / "HRF", HRF_GLAUCOMA_LABELS).parent)
    assert reader.ids() == ["01_g", "01_h", "02_dr", "02_g"] and reader.check() == []
    assert [reader.has_label(image_id) for image_id in reader.ids()] == [True, False, False, True]
    labelled, masked, bare = reader.read("01_g"), reader.read("01_h"), reader.read("02_dr")
    assert labelled.labelled and labelled.vessel.any()
    assert not masked.labelled and masked.vessel.shape == (32, 40) and not masked.vessel.any()
    assert masked.vessel.dtype == np.bool_ and masked.fov.any()
    assert not bare.labelled and bare.fov.any()  # derived from the image, as `dgss predict` does
    assert reader.labels_note() == (
        "HRF: 2 of 4 images have vessel labels; the other 2 are extracted but neither trained on nor scored "
        "(1 of them have no FOV mask and get one derived from the image)"
    )


def test_the_datasets_table_says_how_many_are_labelled(tmp_path: Path, datasets_tree: Tree) -> None:
    datasets_tree(tmp_path / "HRF", HRF_GLAUCOMA_LABELS)
    status = next(status for status in survey_datasets(str(tmp_path)) if status.name == "HRF")
    assert status.ground_truth == "manual1 (2 of 4 images)" and status.counts == {"all": 4} and not status.problems


def test_a_folder_with_a_labelled_subset(tmp_path: Path, datasets_tree: Tree) -> None:
    files = {"images/a.png": "image", "images/b.png": "image", "images/c.png": "image", "labels/b.png": "label"}
    reader = get_dataset(f"folder:{datasets_tree(tmp_path / 'mine', files)}")
    assert reader.ids() == ["a", "b", "c"] and [reader.has_label(i) for i in reader.ids()] == [False, True, False]
    assert reader.labels_note() is not None and reader.labels_note().endswith("the other 2 are extracted but "
                                                                               "neither trained on nor scored")
    assert get_dataset("SYNTH-A-4x16").labels_note() is None


def test_a_labelled_image_without_its_fov_mask_is_still_a_problem(tmp_path: Path, datasets_tree: Tree) -> None:
    files = {**HRF_GLAUCOMA_LABELS}
    del files["mask/02_g_mask.tif"]
    reader = get_dataset("HRF", datasets_tree(tmp_path / "HRF", files).parent)
    with pytest.raises(DatasetError, match=r"02_g.jpg: no FOV mask for its label \(expected .*mask/02_g_mask.\*\)"):
        reader.ids()


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"manual1/03_h.tif": "label"}, "03_h.tif: label without an image"),
        ({"mask/03_h_mask.tif": "fov"}, "03_h_mask.tif: FOV mask without an image"),
        ({"images/01_G.png": "image"}, "01_g.jpg: same name as 01_G.png"),
    ],
)
def test_broken_layouts_stay_refused(tmp_path: Path, datasets_tree: Tree, extra: dict[str, str],
                                     problem: str) -> None:
    reader = get_dataset("HRF", datasets_tree(tmp_path / "HRF", {**HRF_GLAUCOMA_LABELS, **extra}).parent)
    with pytest.raises(DatasetError, match=problem):
        reader.ids()


def test_a_missing_label_folder_stays_refused(tmp_path: Path, datasets_tree: Tree) -> None:
    files = {name: kind for name, kind in HRF_GLAUCOMA_LABELS.items() if kind != "label"}
    reader = get_dataset("HRF", datasets_tree(tmp_path / "HRF", files).parent)
    with pytest.raises(DatasetError, match="manual1: folder missing"):
        reader.ids()


def test_no_label_at_all_is_one_line(tmp_path: Path, datasets_tree: Tree) -> None:
    files = {name: kind for name, kind in HRF_GLAUCOMA_LABELS.items() if kind != "label"}
    (datasets_tree(tmp_path / "HRF", files) / "manual1").mkdir()
    reader = get_dataset("HRF", tmp_path)
    with pytest.raises(DatasetError) as error:
        reader.ids()
    message = str(error.value)
    assert "\n" not in message and "none of its 4 images has a vessel label (looked in manual1/)" in message
    assert "dgss predict" in message and len(reader.check()) == 1
