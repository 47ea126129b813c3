"""Training on the LL band alone (`fit-head --bands LL`) and on raw maps (`extract --bands none`): the part a head
reads, and that it reads nothing else."""

import pytest
import torch

from dgss.aggregate.heads import build_head
from dgss.aggregate.selection import is_part_of, select_features, select_spec
from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.errors import DgssError
from head_batches import random_batch

SMALL = {"width": 8, "kernel_channels": 4}


def _spec(bands: str) -> CacheSpec:
    levels = (("coarse", 8), ("middle", 16), ("fine", 32))
    blocks = tuple(BlockSpec(name=f"up_blocks.{i}", channels=3, height=size, width=size, level=level)
                   for i, (level, size) in enumerate(levels))
    return CacheSpec(blocks=blocks, timesteps=(10, 100), bands=bands, canvas_size=32)


def test_the_ll_part_of_a_haar_cache_has_one_band_at_half_size():
    cached = _spec("haar")
    part = select_spec(cached, bands="LL")
    assert part.band_names == ("LL",) and part.feature_shape(part.blocks[2]) == (2, 1, 3, 16, 16)
    assert select_spec(cached, bands="all") == cached and is_part_of(part, cached) and not is_part_of(cached, part)
    assert not is_part_of(part, _spec("none")) and CacheSpec.from_dict(part.to_dict()) == part


def test_band_ll_of_raw_maps_is_refused_with_the_fix():
    with pytest.raises(DgssError, match="--bands LL needs a cache of Haar bands.*--bands none"):
        select_spec(_spec("none"), bands="LL")


def test_an_ll_head_reads_the_ll_band_and_nothing_else():
    cached = _spec("haar")
    part = select_spec(cached, bands="LL")
    batch = random_batch(cached, 2)
    selected = select_features(batch, cached.timesteps, part, timestep_dim=1)
    key = cached.feature_key(cached.blocks[0])
    assert selected[key].shape[2] == 1 and torch.equal(selected[key][:, :, 0], batch[key][:, :, 0])
    changed = {name: value.clone() for name, value in batch.items()}
    for block in cached.blocks:
        changed[cached.feature_key(block)][:, :, 1:] += 5  # the detail bands LH, HL, HH
    ll_head = build_head("tsfreqagg", part, **SMALL).eval()
    full_head = build_head("tsfreqagg", cached, **SMALL).eval()
    with torch.no_grad():
        ll = [ll_head(select_features(b, cached.timesteps, part, timestep_dim=1)) for b in (batch, changed)]
        full = [full_head(b) for b in (batch, changed)]
    assert torch.equal(ll[0], ll[1]) and not torch.allclose(full[0], full[1])
