"""The heads' input/output contract: inputs read from a batch and checked against the head's cache spec.

A head applied to another cache (other blocks, timesteps or bands) fails here with the key and shapes at fault,
instead of deep inside a conv with a shape error.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.store.errors import ConfigMismatchError

NUM_CLASSES = 2
"""Classes of every head's logits: background and vessel (two-class cross-entropy, as released)."""


def block_features(batch: dict[str, Tensor], spec: CacheSpec, block: BlockSpec) -> Tensor:
    """One block's features as cached.

    Returns
    -------
    Tensor
        (batch, timestep, band, channel, y, x).

    Raises
    ------
    ConfigMismatchError
        The batch lacks the block or its per-image shape is not the spec's.
    """
    key = spec.feature_key(block)
    if key not in batch:
        raise ConfigMismatchError(f"batch lacks {key!r} (has {sorted(batch)}); use the cache the head was "
                                  "trained on")
    features = batch[key]
    expected = spec.feature_shape(block)
    if tuple(features.shape[1:]) != expected:
        raise ConfigMismatchError(f"{key!r} has per-image shape {tuple(features.shape[1:])}, the head expects "
                                  f"{expected}; use the cache the head was trained on")
    return features


def level_features(batch: dict[str, Tensor], spec: CacheSpec, level: str) -> Tensor:
    """A level's blocks concatenated along channels, in cache order.

    Returns
    -------
    Tensor
        (batch, timestep, band, level_channel, y, x).
    """
    return torch.cat([block_features(batch, spec, b) for b in spec.level_blocks(level)], dim=3)
