"""`folder:` datasets are keyed by their resolved path and remember their files: the same folder named two ways
is one entry, another folder with the same name and file stems is never taken for it, and a folder whose files
changed is refused by name (or extracted again with --overwrite)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.errors import DatasetError
from dgss.store import FeatureStore

FILES = {"images/a.png": "image", "images/b.png": "image", "labels/a.png": "label", "labels/b.png": "label"}


def _extract(dgss_cli, model: Path, store: Path, dataset: str, *options: str) -> tuple[int, str, str]:
    return dgss_cli("extract", "--dataset", dataset, "--store", str(store), "--model", str(model), "--timesteps",
                    "10", *options)


def _extracted_folder(dgss_cli, model: Path, tmp_path: Path, datasets_tree) -> tuple[Path, Path, str]:
    """(store, folder, dataset name) of a `folder:` dataset of FILES, extracted."""
    store, folder = tmp_path / "f.zarr", datasets_tree(tmp_path / "mini", FILES)
    name = f"folder:{folder}"
    assert _extract(dgss_cli, model, store, name)[0] == 0
    return store, folder, name


def test_a_folder_named_two_ways_is_one_entry_and_another_folder_of_that_name_is_another(
        extract_model_dir, tmp_path, datasets_tree, datasets_write, dgss_cli, monkeypatch):
    store = tmp_path / "f.zarr"
    first = datasets_tree(tmp_path / "one" / "mini", FILES)
    monkeypatch.chdir(tmp_path / "one")
    code, out, err = _extract(dgss_cli, extract_model_dir, store, "folder:mini")
    assert code == 0, err
    code, out, err = _extract(dgss_cli, extract_model_dir, store, f"folder:{first}")
    assert code == 0 and "0 extracted, 2 already done" in out, out
    assert [entry.dataset for entry in FeatureStore(store).entries()] == [f"folder:{first.resolve()}"]

    second = datasets_tree(tmp_path / "two" / "mini", FILES)
    datasets_write(second / "labels" / "a.png", "image")  # other pixels under the same stems
    monkeypatch.chdir(tmp_path / "two")
    code, out, err = _extract(dgss_cli, extract_model_dir, store, "folder:mini")
    assert code == 0 and "2 extracted" in out, out
    cache = FeatureStore(store)
    one, two = cache.entry(f"folder:{first.resolve()}"), cache.entry(f"folder:{second.resolve()}")
    assert not np.array_equal(one.read("native_vessel", 0), two.read("native_vessel", 0))

    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [4]}, epochs=1, window=None,
                                validation_fraction=0.0)
    run = fit_head(store, ["folder:mini"], tmp_path / "run", config)  # this directory's mini: the second
    assert list(evaluate_run(run, None, [f"folder:{first}"], tmp_path / "report", overlays=0,
                             allow_training_images=True)["targets"]) == [f"folder:{first.resolve()}"]


def test_a_folder_whose_files_changed_is_refused_by_name_until_extracted_again(
        extract_model_dir, tmp_path, datasets_tree, datasets_write, dgss_cli):
    store, folder, name = _extracted_folder(dgss_cli, extract_model_dir, tmp_path, datasets_tree)
    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [4]}, epochs=1, window=None,
                                validation_fraction=0.0)
    run = fit_head(store, [name], tmp_path / "run", config)
    (folder / "labels" / "b.png").write_bytes((folder / "labels" / "b.png").read_bytes() + b"\0" * 10)

    code, _, err = _extract(dgss_cli, extract_model_dir, store, name)
    assert code == 1 and f"{name}: its files changed since it was extracted" in err and "--overwrite" in err
    with pytest.raises(DatasetError, match="its files changed"):
        evaluate_run(run, None, [name], tmp_path / "report", allow_training_images=True)
    with pytest.raises(DatasetError, match="its files changed"):
        fit_head(store, [name], tmp_path / "run2", config)
    code, out, err = _extract(dgss_cli, extract_model_dir, store, name, "--overwrite")
    assert code == 0 and "2 extracted" in out, err
    assert _extract(dgss_cli, extract_model_dir, store, name)[0] == 0
    assert evaluate_run(run, None, [name], tmp_path / "report", overlays=0, allow_training_images=True)["targets"]


def test_a_folder_that_gained_an_image_is_refused_then_replaced_with_overwrite(
        extract_model_dir, tmp_path, datasets_tree, datasets_write, dgss_cli):
    store, folder, name = _extracted_folder(dgss_cli, extract_model_dir, tmp_path, datasets_tree)
    datasets_write(folder / "images" / "c.png", "image")
    datasets_write(folder / "labels" / "c.png", "label")

    code, _, err = _extract(dgss_cli, extract_model_dir, store, name)
    assert code == 1 and f"{name}: its files changed since it was extracted" in err and "--overwrite" in err
    assert FeatureStore(store).entry(name).image_ids == ["a", "b"]  # refused: the cached entry is as it was
    code, out, err = _extract(dgss_cli, extract_model_dir, store, name, "--overwrite")
    assert code == 0 and "3 extracted" in out, err
    entry = FeatureStore(store).entry(name)
    assert entry.image_ids == ["a", "b", "c"] and entry.done().all()
    assert len(FeatureStore(store).entries()) == 1
