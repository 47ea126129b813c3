"""Flips and 90-degree rotations of a training window: cached features, image, labels and FOV together.

Vessels run in every direction, and a head trained on one camera's few images has seen each part of the eye in one
orientation only; the eight symmetries of the square (the dihedral group D4) multiply what it sees, at no cost of
extraction. Feature maps cached as Haar bands are transformed exactly as the bands of the transformed map would be:
mirroring across columns negates the bands that differ across columns (HL, HH), mirroring across rows negates LH and
HH, and a transpose swaps LH and HL. The features are the flipped features of the image, not the features of the
flipped image (the UNet is not equivariant): a regulariser, kept or dropped by what it does on unseen cameras.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dgss.aggregate.spec import CacheSpec

_SIGNS = {  # per band (LL, LH, HL, HH): sign after mirroring across columns (x) / across rows (y)
    "x": torch.tensor([1.0, 1.0, -1.0, -1.0]),
    "y": torch.tensor([1.0, -1.0, 1.0, -1.0]),
}
SYMMETRIES: tuple[tuple[bool, bool, bool], ...] = tuple(
    (transpose, mirror_x, mirror_y) for transpose in (False, True) for mirror_x in (False, True)
    for mirror_y in (False, True))
"""The eight symmetries of the square as (transpose, mirror columns, mirror rows); the identity first."""


def random_symmetry(rng: np.random.Generator) -> tuple[bool, bool, bool]:
    """One of the eight symmetries of the square: (transpose, mirror columns, mirror rows), uniformly."""
    transpose, mirror_x, mirror_y = rng.integers(0, 2, size=3).astype(bool)
    return bool(transpose), bool(mirror_x), bool(mirror_y)


def apply_symmetry(window: dict[str, Tensor], spec: CacheSpec, symmetry: tuple[bool, bool, bool]) -> dict[str, Tensor]:
    """`window` (one item, no batch dim: features (timestep, band, channel, y, x), image (rgb, y, x), maps (y, x))
    transposed, then mirrored across columns and rows as `symmetry` says."""
    transpose, mirror_x, mirror_y = symmetry
    banded = {spec.feature_key(block) for block in spec.blocks} if spec.bands == "haar" else set()
    moved = {}
    for name, value in window.items():
        feature = name in banded
        if transpose:
            value = value.transpose(-1, -2)
            if feature:  # the band axis is 4th from the end
                value = value[..., [0, 2, 1, 3], :, :, :]
        for axis, mirrored in (("x", mirror_x), ("y", mirror_y)):
            if mirrored:
                value = value.flip(-1 if axis == "x" else -2)
                if feature:
                    value = value * _SIGNS[axis].to(value.dtype).view(4, 1, 1, 1)
        moved[name] = value.contiguous()
    return moved


def undo_symmetry(maps: Tensor, symmetry: tuple[bool, bool, bool]) -> Tensor:
    """`maps` (..., y, x) of a transformed window brought back to the window's own orientation: the inverse of
    `apply_symmetry` for maps without bands (logits, probabilities)."""
    transpose, mirror_x, mirror_y = symmetry
    if mirror_y:
        maps = maps.flip(-2)
    if mirror_x:
        maps = maps.flip(-1)
    return maps.transpose(-1, -2) if transpose else maps
