"""A dataset labelled in part, from `dgss extract` to `dgss evaluate`: every image is extracted and marked labelled
or not, fit-head trains and evaluate scores only the labelled ones, each saying how many it left out; a dataset
with no label at all, or one refused at its first file, leaves no store behind."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from dgss.aggregate.evaluation import target_report_dir
from dgss.store import FeatureStore

Tree = Callable[[Path, dict[str, str]], Path]

HRF = {  # labels for 01_g and 02_g only; 03_dr has no FOV mask either
    "images/01_g.jpg": "image",
    "images/01_h.jpg": "image",
    "images/02_g.jpg": "image",
    "images/03_dr.jpg": "image",
    "manual1/01_g.tif": "label",
    "manual1/02_g.tif": "label",
    "mask/01_g_mask.tif": "fov",
    "mask/01_h_mask.tif": "fov",
    "mask/02_g_mask.tif": "fov",
}
TARGET = {"images/a.png": "image", "images/b.png": "image", "images/c.png": "image", "labels/b.png": "label"}


def _extract(dgss_cli, model: Path, root: Path, store: Path, dataset: str, *options: str) -> tuple[int, str, str]:
    return dgss_cli("extract", "--dataset", dataset, "--data-root", str(root), "--store", str(store), "--model",
                    str(model), "--timesteps", "10", *options)


def test_a_partly_labelled_dataset_is_extracted_whole_and_only_its_labels_are_used(
    extract_model_dir, tmp_path, datasets_tree: Tree, dgss_cli, caplog
):
    datasets_tree(tmp_path / "data" / "HRF", HRF)
    target = f"folder:{datasets_tree(tmp_path / 'mine', TARGET)}"
    store = tmp_path / "f.zarr"
    with caplog.at_level(logging.WARNING, logger="dgss"):
        code, out, err = _extract(dgss_cli, extract_model_dir, tmp_path / "data", store, "HRF")
    assert code == 0, err
    assert "HRF: 2 of 4 images have vessel labels; the other 2 are extracted but neither trained on nor scored " \
           "(1 of them have no FOV mask and get one derived from the image)" in caplog.text
    entry = FeatureStore(store, create=False).entry("HRF")
    assert entry.image_ids == ["01_g", "01_h", "02_g", "03_dr"] and entry.done().all()
    assert entry.labelled().tolist() == [True, False, True, False]
    assert not entry.read("native_vessel", 1).any() and entry.read("native_vessel", 0).any()
    assert _extract(dgss_cli, extract_model_dir, tmp_path, store, target)[0] == 0
    code, out, _ = dgss_cli("info", "--store", str(store))
    assert code == 0 and "HRF  key" in out and "4/4 images done (2 without a vessel label)" in out

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dgss"):
        code, out, err = dgss_cli("fit-head", "--source", "HRF", "--store", str(store), "--out",
                               str(tmp_path / "run"), "--head", "mlp", "--head-param", "hidden=[8]", "--epochs", "1",
                               "--validation-fraction", "0", "--window", "0")
    assert code == 0, err
    assert "HRF: 2 of 4 extracted images of split 'all' have no vessel label and are left out; training on the 2 " \
           "labelled" in caplog.text
    assert json.loads((tmp_path / "run" / "run.json").read_text())["sources"] == {"HRF": ["01_g", "02_g"]}

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dgss"):
        code, out, err = dgss_cli("evaluate", "--run", str(tmp_path / "run"), "--target", target,
                               "--report", str(tmp_path / "report"), "--overlays", "0")
    assert code == 0, err
    assert f"{target}: 2 of 3 extracted images of split 'all' have no vessel label and are left out; scoring the " \
           "1 labelled" in caplog.text
    report = target_report_dir(tmp_path / "report", target)
    scores = json.loads((report / "scores.json").read_text())["targets"][target]
    assert (scores["n_images"], scores["unlabelled_images"], list(scores["images"])) == (1, 2, ["b"])


def test_labelled_only_extracts_just_the_labelled_images(extract_model_dir, tmp_path, datasets_tree: Tree, dgss_cli,
                                                         caplog):
    datasets_tree(tmp_path / "data" / "HRF", HRF)
    store = tmp_path / "f.zarr"
    with caplog.at_level(logging.WARNING, logger="dgss"):
        code, out, err = _extract(dgss_cli, extract_model_dir, tmp_path / "data", store, "HRF", "--labelled-only")
    assert code == 0, err
    assert "HRF: key" in out and "2 of 4 selected, 2 extracted" in out and "have vessel labels" not in caplog.text
    entry = FeatureStore(store, create=False).entry("HRF")
    assert entry.done().tolist() == [True, False, True, False] and entry.labelled()[[0, 2]].all()


def test_a_dataset_without_any_label_is_refused_in_one_line_and_leaves_no_store(
    extract_model_dir, tmp_path, datasets_tree: Tree, dgss_cli
):
    root = datasets_tree(tmp_path / "data" / "HRF", {name: kind for name, kind in HRF.items() if kind != "label"})
    (root / "manual1").mkdir()
    code, out, err = _extract(dgss_cli, extract_model_dir, tmp_path / "data", tmp_path / "f.zarr", "HRF")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "none of its 4 images has a vessel label" in lines[0], err
    assert not (tmp_path / "f.zarr").exists()


def test_a_dataset_refused_at_its_first_file_leaves_no_empty_entry(
    extract_model_dir, tmp_path, datasets_tree: Tree, datasets_write, dgss_cli
):
    store = tmp_path / "f.zarr"
    root = datasets_tree(tmp_path / "data" / "HRF", HRF)
    datasets_write(root / "manual1/01_g.tif", "label", shape=(20, 20))  # the first image's label: wrong size
    code, out, err = _extract(dgss_cli, extract_model_dir, tmp_path / "data", store, "HRF")
    assert code == 1 and "01_g.tif: size 20x20 differs" in err and not store.exists()
    target = f"folder:{datasets_tree(tmp_path / 'mine', TARGET)}"
    assert _extract(dgss_cli, extract_model_dir, tmp_path, store, target)[0] == 0
    code, out, err = _extract(dgss_cli, extract_model_dir, tmp_path / "data", store, "HRF")
    assert code == 1 and [entry.dataset for entry in FeatureStore(store, create=False).entries()] == [target]
