"""Photometric views (`NAME+photoK`): reproducible re-renderings of a dataset's training images only, labels and
FOV unchanged, extracted into the cache like any dataset."""

import numpy as np
import pytest

from dgss.datasets.registry import get_dataset
from dgss.errors import DatasetError
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore

BASE = "SYNTH-A-4x64"  # training: synthA_000, synthA_001; test: synthA_002, synthA_003
VIEW = f"{BASE}+photo1"


def test_a_view_holds_the_training_split_only():
    view = get_dataset(VIEW)
    assert view.name == VIEW and view.splits() == {"training": ["synthA_000", "synthA_001"]}
    assert view.field_of_view_deg == get_dataset(BASE).field_of_view_deg
    with pytest.raises(DatasetError, match="synthA_002.*training images only"):
        view.read("synthA_002")  # a view of a test image would put the target among the sources


def test_a_view_changes_the_pixels_inside_the_fov_and_nothing_else():
    base, view = get_dataset(BASE).read("synthA_000"), get_dataset(VIEW).read("synthA_000")
    assert np.array_equal(view.vessel, base.vessel) and np.array_equal(view.fov, base.fov)
    assert np.array_equal(view.image[~base.fov], base.image[~base.fov])
    assert np.abs(view.image[base.fov].astype(int) - base.image[base.fov]).mean() > 2


def test_the_same_view_is_the_same_picture_and_other_views_differ():
    first, again = get_dataset(VIEW).read("synthA_001"), get_dataset(VIEW).read("synthA_001")
    other = get_dataset(f"{BASE}+photo2").read("synthA_001")
    assert np.array_equal(first.image, again.image)
    assert not np.array_equal(first.image, other.image)
    assert get_dataset(VIEW).change("synthA_000") != get_dataset(VIEW).change("synthA_001")


def test_view_zero_and_an_unknown_base_are_one_line_errors():
    with pytest.raises(DatasetError, match=r"numbered from 1, e.g. SYNTH-A-4x64\+photo1"):
        get_dataset(f"{BASE}+photo0")
    with pytest.raises(DatasetError, match="unknown dataset 'NOPE'"):
        get_dataset("NOPE+photo1")


def test_a_view_is_extracted_under_its_base_s_key_so_both_can_be_sources_of_one_head(extract_model_dir, tmp_path):
    store = tmp_path / "f.zarr"
    keys = {name: run_extraction(ExtractionRequest(dataset=name, store=store, model=str(extract_model_dir),
                                                   timesteps=(10,))).key for name in (BASE, VIEW)}
    assert keys[BASE] == keys[VIEW]
    entry = FeatureStore(store, create=False).entry(VIEW, keys[VIEW])
    assert entry.image_ids == ["synthA_000", "synthA_001"] and entry.done().all()
