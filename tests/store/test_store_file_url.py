"""A store named by a `file://` URL behaves exactly as the plain path it names: created with its parent folders,
reopened, claimed, and recorded by a run as that path."""

from pathlib import Path

import pytest

from dgss.store import FeatureStore, store_location
from store_samples import entry_kwargs, image_arrays


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-empty-folder"])
def test_a_file_url_creates_the_store_the_path_would(tmp_path: Path, existing: bool) -> None:
    folder = tmp_path / "shared fs" / "cache.zarr"
    if existing:
        folder.mkdir(parents=True)
    store = FeatureStore(folder.as_uri())
    entry = store.require_entry(**entry_kwargs())
    claim = entry.claim(0)
    assert claim is not None and claim.path is not None and claim.path.is_relative_to(folder)  # a claim file
    entry.write_image(0, image_arrays(0))
    claim.release()
    assert store.location == str(folder)
    assert FeatureStore(folder, create=False).entry("SYNTH-A").done()[0]


def test_a_store_written_by_path_opens_by_url_and_the_url_records_as_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "cache.zarr"
    key = FeatureStore(folder).require_entry(**entry_kwargs()).key
    assert FeatureStore(folder.as_uri(), create=False).entry("SYNTH-A").key == key
    assert FeatureStore(f"local://{folder}", create=False).entry("SYNTH-A").key == key
    assert store_location(folder.as_uri()) == store_location(folder) == str(folder.resolve())
