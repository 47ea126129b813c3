"""Extracted images without a vessel label are left out of what heads train and are scored on, with the count said."""

import logging

import pytest

from dgss.aggregate.data import split_indices, unlabelled_count, warn_pending
from dgss.errors import StoreError


def _unlabel(entry, indices: list[int]) -> None:
    """Write these images again marked unlabelled, as an extraction of images without a label file does."""
    for index in indices:
        entry.write_image(index, {name: entry.read(name, index) for name in entry.array_specs}, labelled=False)


def test_split_indices_skip_unlabelled_images_and_the_warning_counts_them(aggregate_cache, caplog):
    entry = aggregate_cache("SRC", n_images=4, splits=["training", "training", "training", "test"], done=[0, 1, 3])
    _unlabel(entry, [1, 3])  # image 2 is not extracted yet
    assert split_indices(entry, "training") == ("training", [0])
    assert unlabelled_count(entry, "training") == 1 and unlabelled_count(entry, "all") == 2
    with caplog.at_level(logging.WARNING, logger="dgss"):
        warn_pending(entry, "training", "training on")
    assert "SRC: 1 of 3 images of split 'training' are not extracted yet; training on the 2 done" in caplog.text
    assert "SRC: 1 of 2 extracted images of split 'training' have no vessel label and are left out; training on " \
           "the 1 labelled" in caplog.text


def test_a_split_with_no_labelled_image_is_a_one_line_error(aggregate_cache):
    entry = aggregate_cache("TGT", n_images=2)
    _unlabel(entry, [0, 1])
    with pytest.raises(StoreError, match=r"TGT .*no image with a vessel label in split 'all' \(2 extracted, none "
                                         r"labelled\): add its labels"):
        split_indices(entry, "test")
