"""Train a head on part of a cache: some of its blocks, some of its timesteps, without extracting again.

Which features carry what a head needs (the coarse blocks or the fine, early or late timesteps) is a question a
cache answers without the UNet: `select_spec` names the part a head is built from, and `select_features` cuts a
batch as cached down to it. The selected spec is the one saved with the run, so evaluation and prediction cut
their cached or freshly extracted features the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dgss.aggregate.spec import CacheSpec
from dgss.store.errors import ConfigMismatchError, DgssError
from dgss.store.schema import FEATURE_PREFIX


def select_spec(spec: CacheSpec, blocks: Sequence[str] | None = None,
                timesteps: Sequence[int] | None = None) -> CacheSpec:
    """The part of `spec` with only `blocks` and `timesteps` (None: all of them), in cache order.

    Raises
    ------
    DgssError
        A block or timestep the cache does not hold (the message lists those it does), or an empty selection.
    """
    names = [block.name for block in spec.blocks]
    chosen_blocks = _chosen("block", names, blocks, "--blocks")
    chosen_steps = _chosen("timestep", list(spec.timesteps), timesteps, "--timesteps")
    return CacheSpec(blocks=tuple(block for block in spec.blocks if block.name in chosen_blocks),
                     timesteps=tuple(step for step in spec.timesteps if step in chosen_steps),
                     bands=spec.bands, canvas_size=spec.canvas_size)


def is_part_of(spec: CacheSpec, cached: CacheSpec) -> bool:
    """Whether `spec` is `cached` or a part of it that `select_spec` gives: a head built from `spec` can read it."""
    blocks = [block.name for block in spec.blocks]
    if not set(blocks) <= {block.name for block in cached.blocks} or not set(spec.timesteps) <= set(cached.timesteps):
        return False
    return select_spec(cached, blocks, spec.timesteps) == spec


def _chosen(what: str, cached: list, wanted: Sequence | None, option: str) -> set:
    if wanted is None:
        return set(cached)
    missing = [value for value in wanted if value not in cached]
    if missing or not wanted:
        shown = ", ".join(map(str, missing)) if missing else "none"
        raise DgssError(f"{what}(s) {shown} not in the cache, which holds {', '.join(map(str, cached))}: "
                        f"choose {option} among them")
    return set(wanted)


def timestep_positions(cached_timesteps: Sequence[int], spec: CacheSpec) -> list[int]:
    """Where each of `spec`'s timesteps lies along the cached timestep dim."""
    cached = [int(step) for step in cached_timesteps]
    missing = [step for step in spec.timesteps if step not in cached]
    if missing:
        raise ConfigMismatchError(f"the cache lacks timestep(s) {missing} that the head was trained on (it holds "
                                  f"{cached}); extract with the run's timesteps")
    return [cached.index(step) for step in spec.timesteps]


def select_features(batch: Mapping[str, Any], cached_timesteps: Sequence[int], spec: CacheSpec, *,
                    timestep_dim: int) -> dict[str, Any]:
    """`batch` as cached, with only `spec`'s blocks and timesteps among its features; other entries unchanged.

    `timestep_dim` is 0 for one image's arrays (timestep, band, channel, y, x) and 1 for a batch of them.
    """
    keep = {spec.feature_key(block) for block in spec.blocks}
    positions = timestep_positions(cached_timesteps, spec)
    everything = positions == list(range(len(cached_timesteps)))
    selected = {}
    for name, value in batch.items():
        if not name.startswith(FEATURE_PREFIX):
            selected[name] = value
        elif name in keep:
            tensor = torch.as_tensor(value)
            selected[name] = tensor if everything else tensor.index_select(timestep_dim, torch.tensor(positions))
    return selected
