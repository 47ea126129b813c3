"""`dgss info --store STORE` prints each entry's dataset, key, parameters, done/total (and damaged), bytes on disk and ratio."""

from pathlib import Path


from dgss.errors import StoreError
from dgss.pipelines.app import DEFAULT_STORE, app
from dgss.pipelines.info_command import info
from dgss.store import FeatureStore
from dgss.store.integrity import chunk_path
from store_samples import entry_kwargs, image_arrays, invoke_alone


def test_info_is_registered() -> None:
    assert any(command.callback is info for command in app.registered_commands)


def test_info_lists_entries(tmp_path: Path) -> None:
    entry = FeatureStore(tmp_path).require_entry(**entry_kwargs())
    entry.write_image(0, image_arrays(0))
    result = invoke_alone(info, "--store", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"SYNTH-A  key {entry.key}  1/4 images done" in result.output
    assert "timesteps: 1, 10" in result.output
    assert "KiB on disk  ratio" in result.output


def test_info_on_a_non_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = invoke_alone(info, "--store", str(tmp_path))
    assert isinstance(result.exception, StoreError)


def test_info_flags_done_images_with_a_missing_chunk(tmp_path: Path) -> None:
    entry = FeatureStore(tmp_path).require_entry(**entry_kwargs())
    entry.write_image(0, image_arrays(0))
    (tmp_path / chunk_path(entry.group["vessel"], 0)).unlink()
    result = invoke_alone(info, "--store", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "1/4 images done (1 damaged)" in result.output
    assert f"dgss verify --store {tmp_path} --repair" in result.output


def test_info_reads_the_default_store_when_none_is_named(tmp_path: Path, monkeypatch) -> None:
    FeatureStore(tmp_path / DEFAULT_STORE).require_entry(**entry_kwargs())
    monkeypatch.chdir(tmp_path)
    result = invoke_alone(info)
    assert result.exit_code == 0 and "SYNTH-A  key" in result.output, result.output


def test_info_takes_no_positional_store(tmp_path: Path) -> None:
    result = invoke_alone(info, str(tmp_path))
    assert result.exit_code == 2 and "unexpected extra argument" in result.output.lower(), result.output
