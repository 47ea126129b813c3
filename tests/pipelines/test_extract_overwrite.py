"""`dgss extract --overwrite` goes image by image: a run that dies part-way leaves every other image done."""

from pathlib import Path

import pytest

from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import Entry, FeatureStore

DATASET = "SYNTH-A-4x64"


class _Killed(Exception):
    """Stands for a run killed between two images."""


def _request(store: Path, model: Path, **options) -> ExtractionRequest:
    return ExtractionRequest(dataset=DATASET, store=store, model=str(model), timesteps=(10,), **options)


def _entry_bytes(entry: Entry) -> dict[str, bytes]:
    return {f"{name}[{i}]": entry.read(name, i).tobytes() for name in entry.array_specs for i in range(4)}


def test_overwrite_dying_after_one_image_keeps_the_others_done(extract_model_dir, tmp_path, monkeypatch) -> None:
    store = tmp_path / "features.zarr"
    key = run_extraction(_request(store, extract_model_dir)).key
    before = _entry_bytes(FeatureStore(store, create=False).entry(DATASET, key))
    write_image = Entry.write_image

    def die_after_first_image(self: Entry, index: int, arrays: dict, **options) -> None:
        if index > 0:
            raise _Killed
        write_image(self, index, arrays, **options)

    monkeypatch.setattr(Entry, "write_image", die_after_first_image)
    with pytest.raises(_Killed):
        run_extraction(_request(store, extract_model_dir, overwrite=True))
    entry = FeatureStore(store, create=False).entry(DATASET, key)
    assert entry.done().tolist() == [True, True, True, True]
    assert _entry_bytes(entry) == before
