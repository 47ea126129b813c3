"""Streaming cached images: which images a split yields, and what one item holds."""

import pytest
import torch

from dgss.aggregate.data import CachedImages, feature_names, split_indices
from dgss.store.errors import StoreError


def test_split_indices_prefers_the_named_split(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=4, splits=["training", "training", "test", "test"])
    assert split_indices(entry, "training") == ("training", [0, 1])
    assert split_indices(entry, "test") == ("test", [2, 3])


def test_split_indices_falls_back_to_all_images(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=3)
    assert split_indices(entry, "training") == ("all", [0, 1, 2])


def test_split_indices_skips_images_not_done(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=4, done=[0, 2])
    assert split_indices(entry, "test") == ("all", [0, 2])


def test_split_with_no_done_image_is_an_error(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=4, splits=["training", "training", "test", "test"], done=[2, 3])
    with pytest.raises(StoreError, match="SRC .*no extracted image in split 'training'.*dgss extract"):
        split_indices(entry, "training")


def test_item_holds_float16_features_as_cached_and_canvas_labels(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=2)
    item = CachedImages([(entry, 1)])[0]
    assert set(item) == {*feature_names(entry), "image", "vessel", "fov"}
    features = item["features/up_blocks.2"]
    assert features.dtype == torch.float16 and features.shape == (2, 4, 3, 16, 16)  # timestep, band, channel, y, x
    assert item["image"].shape == (3, 32, 32) and 0 <= item["image"].min() <= item["image"].max() <= 1
    assert item["vessel"].dtype == torch.int64 and item["fov"].dtype == torch.bool
    assert torch.equal(item["vessel"].bool(), torch.from_numpy(entry.read("vessel", 1)))


def test_dataset_keeps_no_arrays_between_items(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=2)
    images = CachedImages([(entry, 0), (entry, 1)])
    images[0], images[1]
    assert vars(images) == {"items": [(entry, 0), (entry, 1)], "features": True}


def test_an_image_only_head_gets_no_features(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=2)
    item = CachedImages([(entry, 0)], features=False)[0]
    assert sorted(item) == ["fov", "image", "vessel"]
