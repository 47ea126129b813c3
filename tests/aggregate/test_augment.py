"""Flips and rotations of training windows: Haar bands move as the bands of the flipped map, everything together."""

import itertools

import numpy as np
import pytest
import torch

from dgss.aggregate.augment import SYMMETRIES, apply_symmetry, random_symmetry, undo_symmetry
from dgss.aggregate.data import CachedImages, Step, window_batch
from dgss.aggregate.spec import CacheSpec
from dgss.extract.bands import haar_split
from dgss.store import FeatureStore


class _Haar:
    bands = "haar"
    blocks = ("b",)

    @staticmethod
    def feature_key(block: str) -> str:
        return f"features/{block}"


def _plain(values: torch.Tensor, symmetry: tuple[bool, bool, bool]) -> torch.Tensor:
    transpose, mirror_x, mirror_y = symmetry
    values = values.transpose(-1, -2) if transpose else values
    values = values.flip(-1) if mirror_x else values
    return values.flip(-2) if mirror_y else values


@pytest.mark.parametrize("symmetry", list(itertools.product([False, True], repeat=3)))
def test_haar_bands_of_a_window_move_as_the_bands_of_the_moved_map(symmetry):
    maps = torch.randn(2, 3, 8, 8)  # (timestep, channel, y, x)
    bands = haar_split(maps).permute(0, 2, 1, 3, 4)  # (timestep, band, channel, y/2, x/2) as cached
    label = torch.arange(64.0).view(8, 8)
    moved = apply_symmetry({"features/b": bands, "vessel": label}, _Haar, symmetry)
    torch.testing.assert_close(moved["features/b"], haar_split(_plain(maps, symmetry)).permute(0, 2, 1, 3, 4))
    assert torch.equal(moved["vessel"], _plain(label, symmetry))


def test_all_eight_symmetries_are_drawn():
    rng = np.random.default_rng(0)
    assert len({random_symmetry(rng) for _ in range(200)}) == 8


def test_a_flipped_batch_keeps_labels_and_features_aligned(aggregate_store):
    entry = FeatureStore(aggregate_store).entry("SRC")
    spec = CacheSpec.from_entry_attrs(entry.config, entry.attrs)
    images = CachedImages([(entry, 0), (entry, 1)])
    step = Step((0, 1), window_seed=3)
    plain = window_batch(images, step, spec, 16, 4)
    flipped = window_batch(images, step, spec, 16, 4, flips=True)
    assert plain.keys() == flipped.keys() and all(plain[k].shape == flipped[k].shape for k in plain)
    assert not torch.equal(plain["vessel"], flipped["vessel"])
    # in the synthetic cache vessels are the dark red pixels of the image: alignment survives the flips
    for batch in (plain, flipped):
        red = batch["image"][:, 0]
        assert torch.equal(batch["vessel"].bool(), (red > 0) & (red < 0.5))


def test_undo_brings_every_symmetry_of_a_map_back():
    maps = torch.randn(2, 6, 6)  # (batch, y, x): a probability map as test-time flips return it
    assert len(set(SYMMETRIES)) == 8 and SYMMETRIES[0] == (False, False, False)
    for symmetry in SYMMETRIES:
        moved = apply_symmetry({"prob": maps}, _Haar, symmetry)["prob"]
        assert torch.equal(undo_symmetry(moved, symmetry), maps)
        assert symmetry == SYMMETRIES[0] or not torch.equal(moved, maps)
