"""Every bad input is a one-line StoreError (or ConfigMismatchError) and leaves what is cached untouched."""

import json
from pathlib import Path

import numpy as np
import pytest

from dgss.errors import ConfigMismatchError, StoreError
from dgss.store import ArraySpec, FeatureStore, open, summarize
from store_samples import ARRAYS, CONFIG, IMAGE_IDS, entry_kwargs, image_arrays


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


@pytest.fixture
def cached(tmp_path: Path) -> Path:
    """A store with one entry whose image 0 is done."""
    FeatureStore(tmp_path).require_entry(**entry_kwargs()).write_image(0, image_arrays(0))
    return tmp_path


def _raises(error: type[Exception], match: str, call, *args, **kwargs) -> str:
    with pytest.raises(error, match=match) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_path_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "features.zarr"
    path.write_text("x")
    _raises(StoreError, "is a file", FeatureStore, path)
    _raises(StoreError, "is a file", summarize, path)


def test_directory_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    _raises(StoreError, "not a dgss store", FeatureStore, tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_zarr_store_without_dgss_attrs(tmp_path: Path) -> None:
    (tmp_path / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    _raises(StoreError, "not a dgss store", FeatureStore, tmp_path)


def test_other_schema_version(cached: Path) -> None:
    root = cached / "zarr.json"
    metadata = json.loads(root.read_text())
    metadata["attributes"]["dgss_schema"] = 99
    root.write_text(json.dumps(metadata))
    message = _raises(StoreError, "schema 99", FeatureStore, cached)
    assert "re-extract" in message


def test_missing_store_without_create(tmp_path: Path) -> None:
    _raises(StoreError, "no dgss store", FeatureStore, tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"image_ids": ["im0", "im1", "im2", "other"]}, "image_ids"),
        ({"image_ids": IMAGE_IDS[:3], "splits": ["training"] * 3}, "image_ids"),
        ({"splits": ["all"] * 4}, "splits"),
        ({"arrays": {**ARRAYS, "image": ArraySpec(shape=(16, 16, 3), dtype="int64", dims=("y", "x", "rgb"))}}, "dtype"),
        ({"arrays": {**ARRAYS, "geometry": ArraySpec(shape=(7,), dtype="int64", dims=("geometry",))}}, "shape"),
        ({"arrays": {name: spec for name, spec in ARRAYS.items() if name != "vessel"}}, "vessel"),
        ({"coords": {"timestep": [1, 11], "band": ["LL", "LH", "HL", "HH"], "rgb": ["R", "G", "B"]}}, "coords"),
    ],
)
def test_existing_entry_with_other_layout(cached: Path, changes: dict, field: str) -> None:
    before = _snapshot(cached)
    _raises(ConfigMismatchError, field, FeatureStore(cached).require_entry, **entry_kwargs(**changes))
    assert _snapshot(cached) == before


def test_entry_not_cached(cached: Path) -> None:
    store = FeatureStore(cached)
    message = _raises(StoreError, "dgss extract --dataset STARE --store", store.entry, "STARE")
    assert "SYNTH-A [" in message
    _raises(StoreError, "dgss extract --dataset SYNTH-A", store.entry, "SYNTH-A", "0123456789abcdef")
    _raises(StoreError, "dgss extract --dataset STARE", open, cached, "STARE")


def test_entry_without_key_is_ambiguous(cached: Path) -> None:
    store = FeatureStore(cached)
    store.require_entry(**entry_kwargs(config={**CONFIG, "seed": 1}))
    _raises(StoreError, "several configs", store.entry, "SYNTH-A")


def test_read_of_image_not_done(cached: Path) -> None:
    entry = FeatureStore(cached).entry("SYNTH-A")
    _raises(StoreError, "'im1' .* is not done", entry.read, "image", 1)
    _raises(StoreError, "no array", entry.read, "mask", 0)
    _raises(StoreError, "out of range", entry.read, "image", -1)


def test_bad_writes_touch_nothing(cached: Path) -> None:
    entry = FeatureStore(cached).entry("SYNTH-A")
    before = _snapshot(cached)
    wrong_shape = {**image_arrays(0), "geometry": np.zeros(5, dtype=np.int64)}
    _raises(StoreError, "'geometry' has shape", entry.write_image, 0, wrong_shape)
    wrong_dtype = {**image_arrays(0), "image": np.zeros((16, 16, 3), dtype=np.float32)}
    _raises(StoreError, "does not cast to uint8", entry.write_image, 0, wrong_dtype)
    missing = {name: value for name, value in image_arrays(0).items() if name != "vessel"}
    _raises(StoreError, "missing \\['vessel'\\]", entry.write_image, 1, missing)
    assert _snapshot(cached) == before


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"config": {"blocks": {"up.0"}}}, "config is not plain JSON"),
        ({"coords": {"timestep": [1, object()]}}, "coords 'timestep' is not plain JSON"),
        ({"splits": ["test"]}, "one split per image"),
        ({"image_ids": ["a", "a", "b", "c"]}, "not unique"),
        ({"arrays": {**ARRAYS, "done": ARRAYS["geometry"]}}, "reserved"),
        ({"arrays": {**ARRAYS, "features": ARRAYS["geometry"]}}, "nests under"),
        ({"arrays": {**ARRAYS, "mask": ArraySpec(shape=(8, 8), dtype="bool", dims=("y", "x"))}}, "dim 'y' has size"),
        ({"coords": {"timestep": [1, 10, 50]}}, "coords 'timestep' has 3 values"),
        ({"attrs": {"created": "yesterday"}}, "set by the store itself"),
        ({"attrs": {"model": Path("m")}}, "entry attrs is not plain JSON"),
    ],
)
def test_bad_entry_layout(tmp_path: Path, changes: dict, match: str) -> None:
    _raises(StoreError, match, FeatureStore(tmp_path).require_entry, **entry_kwargs(**changes))
    assert FeatureStore(tmp_path).entries() == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (2, 2), "dtype": "complex64", "dims": ("y", "x")}, "dtype 'complex64'"),
        ({"shape": (2, 2), "dtype": "uint8", "dims": ("y",)}, "one dim name per axis"),
        ({"shape": (2, 2), "dtype": "uint8", "dims": ("image", "x")}, "repeat a name or use 'image'"),
        ({"shape": (0,), "dtype": "uint8", "dims": ("x",)}, "empty axis"),
    ],
)
def test_bad_array_spec(kwargs: dict, match: str) -> None:
    _raises(StoreError, match, ArraySpec, **kwargs)
