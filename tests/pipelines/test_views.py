"""`--views K`: `dgss extract` caches a dataset's photometric views beside it and `dgss fit-head` trains on them, so
the strongest lever on unseen cameras is one option on each command instead of K dataset names to spell out."""

from __future__ import annotations

import json

import numpy as np

import dgss
from dgss.store import FeatureStore

DATASET = "SYNTH-A-4x64"  # 2 training images, 2 test images
TRAINING = ["synthA_000", "synthA_001"]


def _extract(dgss_cli, model, store, *options: str) -> tuple[int, str, str]:
    return dgss_cli("extract", "--dataset", DATASET, "--store", str(store), "--model", str(model),
                    "--timesteps", "10", *options)


def _fit(dgss_cli, store, out, *options: str) -> tuple[int, str, str]:
    return dgss_cli("fit-head", "--source", DATASET, "--store", str(store), "--out", str(out), "--head", "mlp",
                    "--head-param", "hidden=[4]", "--epochs", "1", "--validation-fraction", "0", "--window", "0",
                    *options)


def test_views_are_extracted_beside_their_dataset_and_trained_on(extract_model_dir, tmp_path, dgss_cli):
    store = tmp_path / "f.zarr"
    code, out, err = _extract(dgss_cli, extract_model_dir, store, "--views", "2")
    assert code == 0, err
    views = [f"{DATASET}+photo1", f"{DATASET}+photo2"]
    assert [line.split(":")[0] for line in out.splitlines()] == [DATASET, *views]
    cache = FeatureStore(store, create=False)
    base = cache.entry(DATASET)
    for view in views:
        entry = cache.entry(view)
        assert entry.key == base.key and entry.image_ids == TRAINING and entry.done().all()
        assert not np.array_equal(entry.read("image", 0), base.read("image", 0))  # re-rendered, not a copy

    code, _, err = _fit(dgss_cli, store, tmp_path / "run", "--views", "2")
    assert code == 0, err
    sources = json.loads((tmp_path / "run" / "run.json").read_text())["sources"]
    assert sources == {DATASET: TRAINING, **{view: TRAINING for view in views}}


def test_a_view_not_cached_is_one_line_naming_the_extraction(extract_model_dir, tmp_path, dgss_cli):
    store = tmp_path / "f.zarr"
    assert _extract(dgss_cli, extract_model_dir, store, "--views", "1")[0] == 0
    code, _, err = _fit(dgss_cli, store, tmp_path / "run", "--views", "2")
    assert code == 1 and err.count("\n") == 1
    assert f"no features for {DATASET}+photo2" in err and f"dgss extract --dataset {DATASET}+photo2" in err
    assert not (tmp_path / "run").exists()


def test_views_of_a_test_split_are_refused_before_any_work(extract_model_dir, tmp_path, dgss_cli):
    code, _, err = _extract(dgss_cli, extract_model_dir, tmp_path / "f.zarr", "--views", "1", "--split", "test")
    assert code == 1 and err.count("\n") == 1 and "re-renders training images only" in err
    assert not (tmp_path / "f.zarr").exists()


def test_the_api_names_the_views_the_options_add():
    assert dgss.view_names("DRIVE", 2) == ["DRIVE+photo1", "DRIVE+photo2"] and dgss.view_names("DRIVE", 0) == []
