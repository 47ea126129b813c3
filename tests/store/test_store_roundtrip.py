"""Round trip through the store, run against a local directory and an in-memory zarr store."""

from pathlib import Path

import dask.array
import numpy as np
import pytest
import zarr

from dgss.store import SCHEMA_VERSION, FeatureStore, config_key, open, summarize
from store_samples import ARRAYS, CONFIG, IMAGE_IDS, entry_kwargs, image_arrays


@pytest.fixture(params=["local", "memory"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | zarr.storage.MemoryStore:
    """Where the store lives: only this differs between the two runs of every test."""
    return tmp_path / "cache.zarr" if request.param == "local" else zarr.storage.MemoryStore()


class TestRoundTrip:
    def test_config_key_is_canonical(self) -> None:
        reordered = dict(reversed(list(CONFIG.items())))
        assert config_key(reordered) == config_key(CONFIG)
        assert len(config_key(CONFIG)) == 16
        assert config_key({**CONFIG, "timesteps": [1, 50]}) != config_key(CONFIG)
        assert config_key({**CONFIG, "timesteps": (np.int64(1), 10)}) == config_key(CONFIG)

    def test_write_then_read_exact(self, target) -> None:
        entry = FeatureStore(target).require_entry(**entry_kwargs())
        assert entry.key == config_key(CONFIG)
        assert not entry.done().any()
        for index in (0, 2):
            entry.write_image(index, image_arrays(index))
        assert entry.done().tolist() == [True, False, True, False]
        reopened = FeatureStore(target, create=False).entry("SYNTH-A")
        for index in (0, 2):
            for name, expected in image_arrays(index).items():
                got = reopened.read(name, index)
                assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
        assert reopened.image_ids == IMAGE_IDS
        assert reopened.indices("test") == [2, 3]
        assert reopened.array_specs == ARRAYS
        assert reopened.attrs["model"] == "tiny-unet"
        assert {"dgss_version", "zarr_version", "created"} <= set(reopened.attrs)
        assert reopened.array("features/up.0").metadata.dimension_names[:2] == ("image", "timestep")
        assert reopened.array("features/up.0").chunks == (1, *ARRAYS["features/up.0"].shape)

    def test_require_entry_again_keeps_data(self, target) -> None:
        store = FeatureStore(target)
        store.require_entry(**entry_kwargs()).write_image(1, image_arrays(1))
        again = FeatureStore(target).require_entry(**entry_kwargs(attrs={"model": "other"}))
        assert again.done().tolist() == [False, True, False, False]
        assert again.attrs["model"] == "tiny-unet"

    def test_clear_and_overwrite(self, target) -> None:
        entry = FeatureStore(target).require_entry(**entry_kwargs())
        entry.write_image(0, image_arrays(0))
        entry.clear(0)
        assert not entry.done()[0]
        entry.write_image(0, image_arrays(3))
        assert entry.read("image", 0).tobytes() == image_arrays(3)["image"].tobytes()

    def test_two_configs_side_by_side(self, target) -> None:
        store = FeatureStore(target)
        first = store.require_entry(**entry_kwargs())
        second = store.require_entry(**entry_kwargs(config={**CONFIG, "timesteps": [1, 50]}))
        first.write_image(0, image_arrays(0))
        second.write_image(0, image_arrays(1))
        assert first.key != second.key
        assert first.read("image", 0).tobytes() == image_arrays(0)["image"].tobytes()
        assert second.read("image", 0).tobytes() == image_arrays(1)["image"].tobytes()
        assert [(info.dataset, info.key) for info in store.entries()] == sorted(
            [("SYNTH-A", first.key), ("SYNTH-A", second.key)]
        )
        assert store.entry("SYNTH-A", second.key).done().tolist() == [True, False, False, False]

    def test_open_is_lazy_with_named_dims(self, target) -> None:
        entry = FeatureStore(target).require_entry(**entry_kwargs())
        entry.write_image(1, image_arrays(1))
        view = open(target, "SYNTH-A")
        features = view["features/up.0"]
        assert features.dims == ("image", "timestep", "band", "up.0.channel", "up.0.y", "up.0.x")
        assert isinstance(features.data, dask.array.Array)
        assert features.data.chunks[0] == (1,) and features.dtype == np.float32
        assert view["image"].values.tolist() == [IMAGE_IDS[1]] and view.attrs["images_not_done"] == 3
        assert view["split"].values.tolist() == ["training"]
        assert view["timestep"].values.tolist() == [1, 10]
        assert view["band"].values.tolist() == ["LL", "LH", "HL", "HH"]
        assert view.attrs["blocks"] == ["up.0", "up.1"]
        assert view.attrs["key"] == entry.key and view.attrs["config"] == CONFIG
        assert view["image_data"].dims == ("image", "y", "x", "rgb")
        expected = image_arrays(1)["features/up.1"]
        assert np.array_equal(view["features/up.1"].sel(image="im1").values, expected)

    def test_summarize_counts_bytes(self, target) -> None:
        entry = FeatureStore(target).require_entry(**entry_kwargs())
        for index in range(3):
            entry.write_image(index, image_arrays(index))
        (summary,) = summarize(target)
        per_image = sum(spec.nbytes for spec in ARRAYS.values())
        assert (summary["dataset"], summary["key"]) == ("SYNTH-A", entry.key)
        assert summary["config"] == CONFIG
        assert (summary["images_done"], summary["images_total"]) == (3, 4)
        assert summary["bytes_raw"] == 3 * per_image
        assert 0 < summary["bytes_stored"] < summary["bytes_raw"]
        assert summary["compression_ratio"] == pytest.approx(summary["bytes_raw"] / summary["bytes_stored"])
        assert summary["compression_ratio"] > 1


def test_local_bytes_are_the_files_on_disk(tmp_path: Path) -> None:
    entry = FeatureStore(tmp_path).require_entry(**entry_kwargs())
    entry.write_image(0, image_arrays(0))
    on_disk = sum(path.stat().st_size for path in (tmp_path / "SYNTH-A" / entry.key).rglob("*") if path.is_file())
    assert summarize(tmp_path)[0]["bytes_stored"] == on_disk


def test_reopening_does_not_rewrite_root(tmp_path: Path) -> None:
    FeatureStore(tmp_path).require_entry(**entry_kwargs())
    root_json = tmp_path / "zarr.json"
    before = (root_json.read_bytes(), root_json.stat().st_mtime_ns)
    FeatureStore(tmp_path)
    FeatureStore(tmp_path, create=False).entry("SYNTH-A")
    assert (root_json.read_bytes(), root_json.stat().st_mtime_ns) == before
    assert zarr.open_group(tmp_path, mode="r").attrs["dgss_schema"] == SCHEMA_VERSION


def test_dataset_names_with_slashes(tmp_path: Path) -> None:
    name = "folder:/data/my images"
    entry = FeatureStore(tmp_path).require_entry(**entry_kwargs(dataset=name))
    entry.write_image(0, image_arrays(0))
    assert FeatureStore(tmp_path).entry(name).done()[0]
    assert [path.name for path in tmp_path.iterdir() if path.is_dir()][0].startswith("folder_data_my_images-")


def test_entry_killed_while_being_created_is_remade(tmp_path: Path) -> None:
    key = config_key(CONFIG)
    FeatureStore(tmp_path)
    half_made = zarr.open_group(tmp_path, mode="r+").create_group(f"SYNTH-A/{key}")
    half_made.create_array("image", shape=(9,), dtype="uint8")
    assert FeatureStore(tmp_path).entries() == []
    entry = FeatureStore(tmp_path).require_entry(**entry_kwargs())
    assert entry.array("image").shape == (4, 16, 16, 3)
    assert [info.key for info in FeatureStore(tmp_path).entries()] == [key]
