"""Damage on disk is loud: a missing, truncated or altered chunk and unreadable metadata are errors naming the image
and array, never zeros; `dgss verify` finds them and `--repair` unmarks just those images."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from dgss.errors import DamagedImageError, StoreError
from dgss.pipelines.app import app
from dgss.pipelines.verify_command import verify
from dgss.store import Entry, FeatureStore, config_key, summarize
from dgss.store.integrity import chunk_path
from store_samples import CONFIG, entry_kwargs, image_arrays, invoke_alone

FEATURE = "features/up.0"


@pytest.fixture
def entry(tmp_path: Path) -> Entry:
    """A store whose images 0..2 are done (image 3 is not)."""
    made = FeatureStore(tmp_path).require_entry(**entry_kwargs())
    for index in range(3):
        made.write_image(index, image_arrays(index))
    return made


def _chunk(store: Path, entry: Entry, name: str, index: int) -> Path:
    """The chunk file of image `index` of array `name` (checksums included)."""
    return store / chunk_path(entry.group[name], index)


def _reopened(store: Path) -> Entry:
    return FeatureStore(store, create=False).entry("SYNTH-A")


def _damage_message(store: Path, name: str, index: int) -> str:
    with pytest.raises(DamagedImageError) as caught:
        _reopened(store).read(name, index)
    message = str(caught.value)
    assert "\n" not in message and f"'im{index}'" in message and repr(name) in message
    assert f"dgss verify --store {store} --repair" in message
    return message


def test_verify_is_registered() -> None:
    assert any(command.callback is verify for command in app.registered_commands)


def test_deleted_chunk_is_an_error_not_zeros(tmp_path: Path, entry: Entry) -> None:
    _chunk(tmp_path, entry, FEATURE, 1).unlink()
    assert "no chunk file" in _damage_message(tmp_path, FEATURE, 1)
    assert _reopened(tmp_path).read(FEATURE, 0).tobytes() == image_arrays(0)[FEATURE].tobytes()
    assert [info["images_damaged"] for info in summarize(tmp_path)] == [1]


def test_the_xarray_view_raises_on_a_deleted_chunk_and_leaves_out_images_not_done(tmp_path: Path, entry: Entry) -> None:
    import dgss.store

    _chunk(tmp_path, entry, FEATURE, 1).unlink()
    view = dgss.store.open(tmp_path, "SYNTH-A")
    assert list(view["image"].values) == ["im0", "im1", "im2"] and view.attrs["images_not_done"] == 1
    assert np.array_equal(view[FEATURE].sel(image="im0").values, image_arrays(0)[FEATURE].astype(np.float32))
    with pytest.raises(DamagedImageError, match="no chunk file"):
        view[FEATURE].sum().compute()


def test_truncated_chunk_names_image_and_array(tmp_path: Path, entry: Entry) -> None:
    chunk = _chunk(tmp_path, entry, "features/up.1", 2)
    chunk.write_bytes(chunk.read_bytes()[:20])
    assert "does not decode" in _damage_message(tmp_path, "features/up.1", 2)


def test_chunk_of_another_image_fails_its_checksum(tmp_path: Path, entry: Entry) -> None:
    shutil.copyfile(_chunk(tmp_path, entry, "image", 0), _chunk(tmp_path, entry, "image", 1))
    assert "checksum" in _damage_message(tmp_path, "image", 1)


def test_flipped_checksum_byte_is_caught(tmp_path: Path, entry: Entry) -> None:
    row = _chunk(tmp_path, entry, "checksums", 0)
    data = bytearray(row.read_bytes())
    data[0] ^= 0xFF
    row.write_bytes(bytes(data))
    assert "checksum" in _damage_message(tmp_path, FEATURE, 0)  # the first array's CRC is the first 4 bytes


def test_damaged_array_metadata_is_a_store_error(tmp_path: Path, entry: Entry) -> None:
    (tmp_path / entry.group.path / "vessel" / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"'vessel'.*vessel/zarr\.json") as caught:
        _reopened(tmp_path).read("vessel", 0)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("group", ["", "SYNTH-A", "SYNTH-A/{key}"])
def test_damaged_group_metadata_is_a_store_error_naming_the_file(tmp_path: Path, entry: Entry, group: str) -> None:
    metadata = tmp_path / group.format(key=entry.key) / "zarr.json"
    metadata.write_text("{not json")
    with pytest.raises(StoreError, match="damaged metadata") as caught:
        summarize(tmp_path)
    assert str(metadata) in str(caught.value)


def test_all_fill_value_arrays_are_stored(tmp_path: Path) -> None:
    entry = FeatureStore(tmp_path).require_entry(**entry_kwargs())
    zeros = {name: np.zeros_like(value) for name, value in image_arrays(0).items()}
    entry.write_image(0, zeros)
    assert not _reopened(tmp_path).read("vessel", 0).any()


def test_verify_reports_damage_and_repair_unmarks_only_damaged_images(tmp_path: Path, entry: Entry) -> None:
    _chunk(tmp_path, entry, FEATURE, 1).unlink()
    shutil.copyfile(_chunk(tmp_path, entry, "vessel", 0), _chunk(tmp_path, entry, "vessel", 2))
    result = invoke_alone(verify, "--store", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "1 ok, 2 damaged, 0 unverified, 1 not done" in result.output
    assert f"image 'im1' (index 1): array {FEATURE!r} has no chunk file" in result.output
    assert "image 'im2' (index 2): array 'vessel' does not match its checksum" in result.output
    assert _reopened(tmp_path).done().tolist() == [True, True, True, False]
    repaired = invoke_alone(verify, "--store", str(tmp_path), "--dataset", "SYNTH-A", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "unmarked 2 image(s)" in repaired.output
    assert _reopened(tmp_path).done().tolist() == [True, False, False, False]
    again = invoke_alone(verify, "--store", str(tmp_path))
    assert again.exit_code == 0 and "1 ok, 0 damaged, 0 unverified, 3 not done" in again.output


def test_verify_of_unreadable_metadata_fails_even_with_repair(tmp_path: Path, entry: Entry) -> None:
    (tmp_path / entry.group.path / "image" / "zarr.json").write_text("{not json")
    result = invoke_alone(verify, "--store", str(tmp_path), "--repair")
    assert result.exit_code == 1 and "unreadable" in result.output and "image/zarr.json" in result.output


def test_entry_written_before_checksums_reads_unverified(tmp_path: Path, entry: Entry) -> None:
    shutil.rmtree(tmp_path / entry.group.path / "checksums")  # the layout dgss wrote before checksums
    old = _reopened(tmp_path)
    assert old.key == config_key(CONFIG) and not old.has_checksums
    assert old.read(FEATURE, 2).tobytes() == image_arrays(2)[FEATURE].tobytes()
    old.write_image(3, image_arrays(3))
    result = invoke_alone(verify, "--store", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "0 ok, 0 damaged, 4 unverified, 0 not done" in result.output
    _chunk(tmp_path, entry, "geometry", 0).unlink()
    assert "no chunk file" in _damage_message(tmp_path, "geometry", 0)
