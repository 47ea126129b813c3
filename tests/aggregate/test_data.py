"""Streaming cached images: which images a split yields, and what one item holds."""

import numpy as np
import pytest
import torch

from dgss.aggregate.data import CachedImages, MemoryBudget, feature_names, split_indices
from dgss.errors import StoreError


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


def test_dataset_keeps_no_arrays_between_items_without_a_budget(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=2)
    images = CachedImages([(entry, 0), (entry, 1)])
    images[0], images[1]
    assert images._kept == {} and images.budget.left == 0


def test_a_memory_budget_keeps_the_images_that_fit_and_serves_them_without_a_read(aggregate_cache, monkeypatch):
    entry = aggregate_cache("SRC", n_images=3)
    size = sum(value.nbytes for value in CachedImages([(entry, 0)])[0].values())
    budget = MemoryBudget(2 * size + size // 2)  # room for two images, not three
    images = CachedImages([(entry, 0), (entry, 1), (entry, 2)], budget=budget)
    first = [images[position] for position in range(3)]
    assert sorted(images._kept) == [0, 1] and budget.left == size // 2
    reads = []
    monkeypatch.setattr(type(entry), "read", lambda self, name, index: reads.append(index) or pytest.fail("read"))
    assert images[0] is first[0] and images[1] is first[1] and reads == []
    with pytest.raises(pytest.fail.Exception):
        images[2]  # did not fit: read again


def test_an_image_only_head_gets_no_features(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=2)
    item = CachedImages([(entry, 0)], features=False)[0]
    assert sorted(item) == ["fov", "image", "vessel"]


def test_the_head_image_is_the_appearance_matched_canvas_the_backbone_saw():
    from dgss.aggregate.data import head_image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 80, size=(16, 16, 3), dtype=np.uint8)
    fov = np.zeros((16, 16), dtype=bool)
    fov[2:14, 2:14] = True
    target = {"mean": [120.0, 60.0, 30.0], "std": [20.0, 10.0, 5.0]}
    matched = head_image(image, fov, {"appearance": target}).numpy() * 255
    inside = matched[:, fov]
    np.testing.assert_allclose(inside.mean(axis=1), target["mean"], atol=1.0)
    np.testing.assert_allclose(inside.std(axis=1), target["std"], atol=1.0)
    np.testing.assert_array_equal(matched[:, ~fov], image[~fov].T)  # outside the FOV as cached
    plain = head_image(image, fov, {"appearance": None}).numpy() * 255
    np.testing.assert_allclose(plain, image.transpose(2, 0, 1), atol=1e-4)
