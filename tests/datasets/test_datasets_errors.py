"""Bad input: each problem is a one-line DatasetError naming the file, and check() lists them all."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from dgss.datasets import get_dataset, read_image
from dgss.errors import DatasetError

Tree = Callable[[Path, dict[str, str]], Path]

HRF_ONE = {"images/01_h.jpg": "image", "manual1/01_h.tif": "label", "mask/01_h_mask.tif": "fov"}


def _one_line(error: pytest.ExceptionInfo[DatasetError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(DatasetError) as error:
        get_dataset("DRIVEE")
    assert all(name in _one_line(error) for name in ("'DRIVEE'", "DRIVE", "CHASE_DB1", "SYNTH-A", "folder:PATH"))
    with pytest.raises(DatasetError, match="unknown dataset 'SYNTH-Z'"):
        get_dataset("SYNTH-Z")


def test_missing_folder_says_where_and_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DGSS_DATA_ROOT", str(tmp_path / "env-root"))  # read at call time, not import time
    with pytest.raises(DatasetError) as error:
        get_dataset("HRF")
    message = _one_line(error)
    assert str(tmp_path / "env-root" / "HRF") in message and "--data-root" in message and "DGSS_DATA_ROOT" in message
    with pytest.raises(DatasetError, match="no folder"):
        get_dataset(f"folder:{tmp_path / 'absent'}")


def test_label_without_image_is_refused_an_image_without_label_is_not(tmp_path: Path, datasets_tree: Tree) -> None:
    files = {**HRF_ONE, "images/02_dr.jpg": "image", "manual1/03_g.tif": "label", "mask/02_dr_mask.tif": "fov"}
    reader = get_dataset("HRF", datasets_tree(tmp_path / "HRF", files).parent)
    with pytest.raises(DatasetError) as error:
        reader.ids()
    assert "03_g.tif: label without an image" in _one_line(error) and "--check" in str(error.value)
    problems = reader.check()
    assert len(problems) == 1 and problems[0].endswith("03_g.tif: label without an image")


def test_missing_fov_mask_and_folder(tmp_path: Path, datasets_tree: Tree) -> None:
    reader = get_dataset("IOSTAR", datasets_tree(tmp_path / "IOSTAR", {
        "image/STAR 01_OSC.jpg": "image", "GT/STAR 01_OSC_GT.tif": "label"
    }).parent)
    problems = reader.check()
    assert any(line.endswith("mask: folder missing") for line in problems)
    assert any("STAR 01_OSC.jpg: no FOV mask" in line for line in problems)


def test_label_size_differs(tmp_path: Path, datasets_tree: Tree, datasets_write: Callable[..., Path]) -> None:
    root = datasets_tree(tmp_path / "HRF", HRF_ONE)
    datasets_write(root / "manual1/01_h.tif", "label", shape=(30, 40))
    reader = get_dataset("HRF", tmp_path)
    with pytest.raises(DatasetError) as error:
        reader.read("01_h")
    assert "01_h.tif: size 40x30 differs from its image 01_h.jpg" in _one_line(error)
    assert reader.check() == [str(error.value)]


@pytest.mark.parametrize("broken", ["images/01_h.jpg", "manual1/01_h.tif", "mask/01_h_mask.tif"])
def test_truncated_or_unreadable_file(broken: str, tmp_path: Path, datasets_tree: Tree) -> None:
    root = datasets_tree(tmp_path / "HRF", HRF_ONE)
    data = (root / broken).read_bytes()
    (root / broken).write_bytes(data[: len(data) // 2])
    reader = get_dataset("HRF", tmp_path)
    with pytest.raises(DatasetError) as error:
        reader.read("01_h")
    assert _one_line(error).startswith(f"cannot read {root / broken}")
    assert len(reader.check()) == 1


def test_truncated_gzip_and_garbage(tmp_path: Path, datasets_write: Callable[..., Path]) -> None:
    gz = datasets_write(tmp_path / "im0001.ppm.gz")
    gz.write_bytes(gz.read_bytes()[:-30])
    with pytest.raises(DatasetError, match="cannot read .*im0001.ppm.gz"):
        read_image(gz)
    not_gz = tmp_path / "im0002.ppm.gz"
    not_gz.write_bytes(b"P6 not compressed")
    with pytest.raises(DatasetError, match="im0002.ppm.gz"):
        read_image(not_gz)
    garbage = tmp_path / "x.png"
    garbage.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="x.png"):
        read_image(garbage)
    short_ppm = tmp_path / "y.ppm"
    short_ppm.write_bytes(gzip.decompress(gzip.compress(b"P6 40 32 255\n" + bytes(100))))
    with pytest.raises(DatasetError, match="y.ppm"):
        read_image(short_ppm)


def test_unknown_image_id_and_split(tmp_path: Path, datasets_tree: Tree) -> None:
    reader = get_dataset("HRF", datasets_tree(tmp_path / "HRF", HRF_ONE).parent)
    with pytest.raises(DatasetError, match="no image '99_h'"):
        reader.read("99_h")
    with pytest.raises(DatasetError, match="no split 'test'"):
        reader.ids("test")
    with pytest.raises(DatasetError, match="no image"):
        get_dataset("SYNTH-A-4x16").read("01_h")


def test_empty_dataset_folder_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "LES-AV" / "images").mkdir(parents=True)
    (tmp_path / "LES-AV" / "vessel-segmentations").mkdir()
    (tmp_path / "LES-AV" / "masks").mkdir()
    reader = get_dataset("LES-AV", tmp_path)
    assert reader.check() == [f"{tmp_path / 'LES-AV'}: no images found for LES-AV"]
