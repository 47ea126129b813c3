"""Every reader on a tiny fixture tree in its published layout, the folder: reader, synthetic data and image I/O."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dgss.datasets import dataset_names, derive_fov, get_dataset, read_image, resolve_data_root
from dgss.datasets import source_ids, target_ids

Tree = Callable[[Path, dict[str, str]], Path]

LAYOUTS: dict[str, tuple[dict[str, str], dict[str, list[str]]]] = {
    "HRF": (
        {
            "images/01_h.jpg": "image",
            "images/02_dr.JPG": "image",
            "images/10_g.jpg": "image",
            "manual1/01_h.tif": "label",
            "manual1/02_dr.tif": "label",
            "manual1/10_g.tif": "label",
            "mask/01_h_mask.tif": "fov",
            "mask/02_dr_mask.tif": "fov",
            "mask/10_g_mask.tif": "fov",
        },
        {"all": ["01_h", "02_dr", "10_g"]},
    ),
    "IOSTAR": (
        {
            "image/STAR 01_OSC.jpg": "image",
            "image/STAR 02_ODC.jpg": "image",
            "GT/STAR 01_OSC_GT.tif": "label",
            "GT/STAR 02_ODC_GT.tif": "label",
            "mask/STAR 01_OSC_Mask.tif": "fov",
            "mask/STAR 02_ODC_Mask.tif": "fov",
            "mask_OD/STAR 01_OSC_ODMask.tif": "fov",
        },
        {"all": ["STAR 01_OSC", "STAR 02_ODC"]},
    ),
    "LES-AV": (
        {
            "LES-AV/images/2.png": "image",
            "LES-AV/images/10.png": "image",
            "LES-AV/vessel-segmentations/2.png": "label",
            "LES-AV/vessel-segmentations/10.png": "label",
            "LES-AV/masks/2_mask.gif": "fov",
            "LES-AV/masks/10_mask.gif": "fov",
            "LES-AV/arteries/2.png": "label",
        },
        {"all": ["2", "10"]},
    ),
    "DR-HAGIS": (
        {
            "DRHAGIS/Fundus_Images/1.jpg": "image",
            "DRHAGIS/Manual_Segmentations/1_manual_orig.png": "label",
            "DRHAGIS/Mask_images/1_mask_orig.png": "fov",
        },
        {"all": ["1"]},
    ),
    "FIVES": (
        {
            "train/Original/1_A.png": "image",
            "train/Original/2_D.png": "image",
            "train/Ground truth/1_A.png": "label",
            "train/Ground truth/2_D.png": "label",
            "test/Original/1_A.png": "image",
            "test/Ground truth/1_A.png": "label",
        },
        {"training": ["1_A_training", "2_D_training"], "test": ["1_A_test"]},
    ),
    "CHASE_DB1": (
        {
            "images/Image_01L.jpg": "image",
            "images/Image_01R.jpg": "image",
            "manual/Image_01L_1stHO.png": "label",
            "manual/Image_01R_1stHO.png": "label",
            "manual/Image_01L_2ndHO.png": "label",
        },
        {"all": ["Image_01L", "Image_01R"]},
    ),
    "STARE": (
        {
            "stare-images/im0001.ppm.gz": "image",
            "stare-images/im0002.ppm": "image",
            "labels-ah/im0001.ah.ppm.gz": "label",
            "labels-ah/im0002.ah.ppm": "label",
            "labels-vk/im0001.vk.ppm.gz": "label",
        },
        {"all": ["im0001", "im0002"]},
    ),
    "DRIVE": (
        {
            "training/images/21_training.tif": "image",
            "training/1st_manual/21_manual1.gif": "label",
            "training/mask/21_training_mask.gif": "fov",
            "test/images/01_test.tif": "image",
            "test/1st_manual/01_manual1.gif": "label",
            "test/2nd_manual/01_manual2.gif": "label",
            "test/mask/01_test_mask.gif": "fov",
        },
        {"training": ["21_training"], "test": ["01_test"]},
    ),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_reader_on_published_layout(name: str, tmp_path: Path, datasets_tree: Tree) -> None:
    files, splits = LAYOUTS[name]
    datasets_tree(tmp_path / name, files)
    reader = get_dataset(name, tmp_path)
    assert reader.splits() == splits
    assert reader.check() == []
    for image_id in reader.ids():
        sample = reader.read(image_id)
        assert sample.image.shape == (32, 40, 3) and sample.image.dtype == np.uint8
        assert sample.vessel.dtype == np.bool_ and sample.fov.dtype == np.bool_
        assert reader.shape(image_id) == (32, 40)
        assert 0 < sample.vessel.sum() and (sample.vessel & sample.fov).sum() / sample.vessel.sum() > 0.8
        assert sample.split == reader.split_of(image_id)


def test_chase_flat_layout_ignores_second_observer(tmp_path: Path, datasets_tree: Tree) -> None:
    files = {"Image_01L.jpg": "image", "Image_01L_1stHO.png": "label", "Image_01L_2ndHO.png": "label"}
    reader = get_dataset("CHASE_DB1", datasets_tree(tmp_path / "CHASE_DB1", files).parent)
    assert reader.splits() == {"all": ["Image_01L"]} and reader.fov_source == "derived"


def test_folder_reader_with_and_without_fov(tmp_path: Path, datasets_tree: Tree) -> None:
    files = {"images/b.png": "image", "images/a.jpg": "image", "labels/a.png": "label", "labels/b.gif": "label"}
    plain = datasets_tree(tmp_path / "plain", files)
    reader = get_dataset(f"folder:{plain}")
    assert reader.splits() == {"all": ["a", "b"]} and reader.fov_source == "derived"
    assert reader.read("a").fov.any()
    with_fov = datasets_tree(tmp_path / "with_fov", {**files, "fov/a.png": "fov", "fov/b.tif": "fov"})
    reader = get_dataset(f"folder:{with_fov}")
    assert reader.fov_source == "published" and reader.check() == []
    assert source_ids(reader) == target_ids(reader) == ["a", "b"]


def test_synthetic_readers_need_no_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DGSS_DATA_ROOT", str(tmp_path / "nowhere"))
    assert {"SYNTH-A", "SYNTH-B", "SYNTH-C"} <= set(dataset_names())
    full = get_dataset("SYNTH-B")
    assert [len(ids) for ids in full.splits().values()] == [10, 10] and full.shape(full.ids()[0]) == (512, 512)
    reader = get_dataset("SYNTH-C-4x32")
    assert source_ids(reader) == reader.ids("training") and len(target_ids(reader)) == 2
    sample = reader.read(target_ids(reader)[0])
    assert sample.image.shape == (32, 32, 3) and sample.vessel.shape == sample.fov.shape == (32, 32)
    assert sample.split == "test" and reader.check() == []
    # Each domain keeps the field angle of the camera it imitates (C: CHASE_DB1, 30 deg).
    assert (get_dataset("SYNTH-A").field_of_view_deg, reader.field_of_view_deg) == (45.0, 30.0)


def test_data_root_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DGSS_DATA_ROOT", raising=False)
    assert resolve_data_root(None) == Path("data")
    monkeypatch.setenv("DGSS_DATA_ROOT", str(tmp_path))
    assert resolve_data_root(None) == tmp_path
    assert resolve_data_root(tmp_path / "given") == tmp_path / "given"


def test_read_image_formats(tmp_path: Path, datasets_write: Callable[..., Path]) -> None:
    reference = read_image(datasets_write(tmp_path / "ref.png"))
    for name in ("a.tif", "a.ppm", "a.ppm.gz", "a.gif", "a.tif.gz"):
        assert read_image(datasets_write(tmp_path / name)).shape == (32, 40, 3)
    assert np.array_equal(read_image(datasets_write(tmp_path / "b.ppm.gz")), reference)
    grey = read_image(datasets_write(tmp_path / "grey.pgm", mode="L"))
    assert grey.shape == (32, 40, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    rgba = read_image(datasets_write(tmp_path / "rgba.png", mode="RGBA"))
    assert np.array_equal(rgba, reference)


def test_derive_fov_follows_the_bright_disc(tmp_path: Path, datasets_write: Callable[..., Path]) -> None:
    image = read_image(datasets_write(tmp_path / "disc.png", shape=(64, 80)))
    image[2:6, 2:6] = 200  # a bright speck outside the disc (e.g. a text label) is not the FOV
    fov = derive_fov(image)
    assert fov[32, 40] and not fov[3, 3] and not fov[0, 0]
    assert not derive_fov(np.zeros((16, 16, 3), dtype=np.uint8)).any()
