"""Which images have a vessel label: written in each image's done marker, read back per image; a marker written
before dgss stored unlabelled images (1) means labelled."""

import numpy as np

from dgss.store import FeatureStore, summarize
from dgss.store import open as open_view
from store_samples import entry_kwargs, image_arrays


def test_an_unlabelled_image_is_done_but_not_labelled(tmp_path):
    entry = FeatureStore(tmp_path / "s.zarr").require_entry(**entry_kwargs())
    entry.write_image(0, image_arrays(0))
    entry.write_image(2, image_arrays(2), labelled=False)
    reopened = FeatureStore(tmp_path / "s.zarr", create=False).entry("SYNTH-A")
    assert reopened.done().tolist() == [True, False, True, False]
    assert reopened.labelled().tolist() == [True, False, False, False]
    assert reopened.is_done(2) and reopened.is_done(2, labelled=False) and not reopened.is_done(2, labelled=True)
    assert reopened.is_done(0, labelled=True) and not reopened.is_done(1, labelled=False)
    assert np.array_equal(reopened.read("vessel", 2), image_arrays(2)["vessel"])  # read like any other image
    entry.write_image(2, image_arrays(2))  # its label was added: written again, now labelled
    assert reopened.labelled().tolist() == [True, False, True, False]


def test_an_entry_written_before_labels_were_recorded_is_all_labelled(tmp_path):
    entry = FeatureStore(tmp_path / "s.zarr").require_entry(**entry_kwargs())
    for index in range(4):
        entry.write_image(index, image_arrays(index))
    entry.group["done"][:] = 1  # the only marker older dgss wrote
    assert entry.labelled().all() and entry.done().all()


def test_info_and_the_xarray_view_say_which_images_are_labelled(tmp_path):
    entry = FeatureStore(tmp_path / "s.zarr").require_entry(**entry_kwargs())
    entry.write_image(0, image_arrays(0), labelled=False)
    entry.write_image(1, image_arrays(1))
    assert summarize(tmp_path / "s.zarr")[0]["images_labelled"] == 1
    view = open_view(tmp_path / "s.zarr", "SYNTH-A")
    assert view["labelled"].values.tolist() == [False, True] and list(view["image"].values) == ["im0", "im1"]


def test_if_present_opens_a_store_and_creates_none(tmp_path):
    assert FeatureStore.if_present(tmp_path / "absent.zarr") is None and not (tmp_path / "absent.zarr").exists()
    FeatureStore(tmp_path / "s.zarr").require_entry(**entry_kwargs())
    store = FeatureStore.if_present(tmp_path / "s.zarr")
    assert store is not None and store.has_entry("SYNTH-A", store.entry("SYNTH-A").key)
    assert not store.has_entry("SYNTH-A", "0" * 16) and not store.has_entry("DRIVE", store.entry("SYNTH-A").key)
