"""The heads' input/output contract: inputs read from a batch and checked against the head's cache spec.

A head applied to another cache (other blocks, timesteps or bands) fails here with the key and shapes at fault,
instead of deep inside a conv with a shape error.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.errors import ConfigMismatchError

NUM_CLASSES = 2
"""Classes of every head's logits: background and vessel (two-class cross-entropy, as released)."""


def block_features(batch: dict[str, Tensor], spec: CacheSpec, block: BlockSpec) -> Tensor:
    """One block's features as cached, over the whole canvas or over a window of it.

    Returns
    -------
    Tensor
        (batch, timestep, band, channel, y, x).

    Raises
    ------
    ConfigMismatchError
        The batch lacks the block, its (timestep, band, channel) shape is not the spec's, or its map does not
        cover the same window as the image.
    """
    key = spec.feature_key(block)
    if key not in batch:
        raise ConfigMismatchError(f"batch lacks {key!r} (has {sorted(batch)}); use the cache the head was "
                                  "trained on")
    features = batch[key]
    expected = spec.feature_shape(block)[:3] + window_map_size(batch, spec, block)
    if tuple(features.shape[1:]) != expected:
        raise ConfigMismatchError(f"{key!r} has per-image shape {tuple(features.shape[1:])}, the head expects "
                                  f"{expected}; use the cache the head was trained on")
    return features


def window_size(batch: dict[str, Tensor], spec: CacheSpec) -> int:
    """Side in canvas pixels of the (square) window the batch covers: the canvas, or a training/inference window."""
    first = spec.blocks[0]
    features = batch.get(spec.feature_key(first))
    if features is None:
        raise ConfigMismatchError(f"batch lacks {spec.feature_key(first)!r} (has {sorted(batch)}); use the cache "
                                  "the head was trained on")
    if tuple(features.shape[-2:]) == spec.map_size(first):
        return spec.canvas_size
    return features.shape[-1] * spec.stride(first)


def window_map_size(batch: dict[str, Tensor], spec: CacheSpec, block: BlockSpec) -> tuple[int, int]:
    """(y, x) of ``block``'s map over the batch's window."""
    side = window_size(batch, spec)
    if side == spec.canvas_size:
        return spec.map_size(block)
    return side // spec.stride(block), side // spec.stride(block)


def level_features(batch: dict[str, Tensor], spec: CacheSpec, level: str) -> Tensor:
    """A level's blocks concatenated along channels, in cache order, as float32.

    Returns
    -------
    Tensor
        (batch, timestep, band, level_channel, y, x).
    """
    blocks = [block_features(batch, spec, b) for b in spec.level_blocks(level)]
    return (blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=3)).float()
