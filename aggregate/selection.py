"""Train a head on part of a cache: some of its blocks, some of its timesteps, its LL band alone, without
extracting again.

Which features carry what a head needs (the coarse blocks or the fine, early or late timesteps, the smooth band or
the details too) is a question a cache answers without the UNet: `select_spec` names the part a head is built from,
and `select_features` cuts a batch as cached down to it. The selected spec is the one saved with the run, so evaluation and prediction cut
their cached or freshly extracted features the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dgss.aggregate.spec import CacheSpec
from dgss.errors import ConfigMismatchError, DgssError
from dgss.store.schema import FEATURE_PREFIX


ALL_BANDS = "all"
LL_BAND = "LL"


def select_spec(spec: CacheSpec, blocks: Sequence[str] | None = None, timesteps: Sequence[int] | None = None,
                bands: str | None = None) -> CacheSpec:
    """The part of `spec` with only `blocks` and `timesteps` (None: all of them), in cache order, and with `bands`
    "LL" the Haar band LL alone ("all" or None: every cached band).

    Raises
    ------
    DgssError
        A block or timestep the cache does not hold (the message lists those it does), an empty selection, or band
        LL of a cache without Haar bands.
    """
    names = [block.name for block in spec.blocks]
    chosen_blocks = _chosen("block", names, blocks, "--blocks")
    chosen_steps = _chosen("timestep", list(spec.timesteps), timesteps, "--timesteps")
    return CacheSpec(blocks=tuple(block for block in spec.blocks if block.name in chosen_blocks),
                     timesteps=tuple(step for step in spec.timesteps if step in chosen_steps),
                     bands=_chosen_bands(spec.bands, bands), canvas_size=spec.canvas_size)


def _chosen_bands(cached: str, wanted: str | None) -> str:
    if wanted in (None, ALL_BANDS) or wanted == cached:
        return cached
    if wanted != LL_BAND:
        raise DgssError(f"bands {wanted!r}: choose {ALL_BANDS} or {LL_BAND} (--bands)")
    if cached != "haar":
        raise DgssError(f"--bands {LL_BAND} needs a cache of Haar bands, this one holds raw maps (extracted with "
                        f"--bands none): train on all its bands, or extract with --bands haar")
    return LL_BAND


def is_part_of(spec: CacheSpec, cached: CacheSpec) -> bool:
    """Whether `spec` is `cached` or a part of it that `select_spec` gives: a head built from `spec` can read it."""
    blocks = [block.name for block in spec.blocks]
    if not set(blocks) <= {block.name for block in cached.blocks} or not set(spec.timesteps) <= set(cached.timesteps):
        return False
    if spec.bands != cached.bands and not (spec.bands == LL_BAND and cached.bands == "haar"):
        return False
    return select_spec(cached, blocks, spec.timesteps, spec.bands) == spec


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

    `timestep_dim` is 0 for one image's arrays (timestep, band, channel, y, x) and 1 for a batch of them. A spec of
    band LL alone takes the first band of the cached Haar bands.
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
            tensor = tensor if everything else tensor.index_select(timestep_dim, torch.tensor(positions))
            selected[name] = tensor.narrow(timestep_dim + 1, 0, 1).clone() if spec.bands == LL_BAND else tensor
    return selected
