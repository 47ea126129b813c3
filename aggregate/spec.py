"""What a cache entry holds, as the heads need it: blocks, levels, timesteps, bands and output size.

A head is built from a :class:`CacheSpec`, never from hard-coded channel counts or sizes, and the spec is saved
beside every trained head (``to_dict``/``from_dict``) so a head can be checked against the cache it is applied to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dgss.errors import StoreError
from dgss.store.schema import BAND_NAMES as CACHED_BAND_NAMES
from dgss.store.schema import LEVELS, BlockLayout, EntryLayout, banded_size, feature_array, halves_maps

BAND_NAMES = {**CACHED_BAND_NAMES, "LL": ("LL",)}
"""Band names per ``bands`` of a spec: the extraction's ``haar`` or ``none``, or ``LL``, the smooth Haar band alone
(a part of a ``haar`` cache that `dgss.aggregate.selection` cuts for ``fit-head --bands LL``)."""


@dataclass(frozen=True, kw_only=True)
class BlockSpec(BlockLayout):
    """One cached block: its layout as the entry records it (map size before any band split) and its level."""

    level: str

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "level": self.level}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlockSpec:
        return cls(**asdict(BlockLayout.from_dict(data)), level=str(data["level"]))


@dataclass(frozen=True, kw_only=True)
class CacheSpec:
    """The frozen shape of one cache entry, in block order, with levels ordered coarse to fine.

    Parameters
    ----------
    blocks
        Every cached block with its level; the blocks of one level share one map size.
    timesteps
        Diffusion timesteps in cache order (the ``timestep`` dim of every feature array).
    bands
        ``"haar"`` (bands LL, LH, HL, HH at half the block map), ``"LL"`` (band LL alone, at half the block map)
        or ``"none"`` (one band ``"raw"``).
    canvas_size
        Side of the preprocessed square image, which is also the side of the predicted map.
    """

    blocks: tuple[BlockSpec, ...]
    timesteps: tuple[int, ...]
    bands: str
    canvas_size: int

    def __post_init__(self) -> None:
        if self.bands not in BAND_NAMES:
            raise StoreError(f"bands={self.bands!r} is unknown; use one of {sorted(BAND_NAMES)}")
        if not self.blocks:
            raise StoreError("the cache spec has no blocks; extract at least one block")
        if not self.timesteps:
            raise StoreError("the cache spec has no timesteps; extract at least one timestep")
        for block in self.blocks:
            if block.level not in LEVELS:
                raise StoreError(f"block {block.name!r} has level {block.level!r}; use one of {LEVELS}")
            if self.halved and (block.height % 2 or block.width % 2):
                raise StoreError(f"block {block.name!r} map {block.height}x{block.width} is odd; haar bands need "
                                 "even map sizes (extract with bands='none')")
        for level in self.levels:
            sizes = {(b.height, b.width) for b in self.level_blocks(level)}
            if len(sizes) > 1:
                raise StoreError(f"level {level!r} mixes map sizes {sorted(sizes)}; a level's blocks must share "
                                 "one map size")
        areas = [self.level_size(level)[0] * self.level_size(level)[1] for level in self.levels]
        if areas != sorted(areas):
            raise StoreError(f"levels {self.levels} do not grow from coarse to fine (map areas {areas}); "
                             "reassign the blocks to levels")

    @property
    def halved(self) -> bool:
        """Whether the cached maps are Haar bands, at half the block map."""
        return halves_maps(self.bands)

    @property
    def band_names(self) -> tuple[str, ...]:
        """Band coordinate values of every feature array, e.g. ``("LL", "LH", "HL", "HH")``."""
        return BAND_NAMES[self.bands]

    @property
    def levels(self) -> tuple[str, ...]:
        """Non-empty levels, coarse to fine."""
        return tuple(level for level in LEVELS if any(b.level == level for b in self.blocks))

    def level_blocks(self, level: str) -> tuple[BlockSpec, ...]:
        """Blocks of ``level`` in cache order (their channels are concatenated in this order)."""
        return tuple(b for b in self.blocks if b.level == level)

    def level_channels(self, level: str) -> int:
        """Channels of ``level`` after concatenating its blocks."""
        return sum(b.channels for b in self.level_blocks(level))

    def level_size(self, level: str) -> tuple[int, int]:
        """(height, width) of ``level``'s cached maps, i.e. after the band split."""
        first = self.level_blocks(level)[0]
        return self.map_size(first)

    def map_size(self, block: BlockSpec) -> tuple[int, int]:
        """(height, width) of ``block``'s cached maps: half the block map with Haar bands."""
        return banded_size(block.height, self.bands), banded_size(block.width, self.bands)

    def stride(self, block: BlockSpec) -> int:
        """Canvas pixels per cached map pixel of ``block`` (e.g. 4 for a 128 px map of a 512 px canvas)."""
        height, width = self.map_size(block)
        if self.canvas_size % height or self.canvas_size % width or height != width:
            raise StoreError(f"block {block.name!r} map {height}x{width} does not tile the {self.canvas_size} px "
                             "canvas evenly, so it cannot be cut into windows: use whole canvases (fit-head --window 0, "
                             "evaluate --tile 0) or re-extract with a canvas that is a multiple of the map size")
        return self.canvas_size // height

    @property
    def window_multiple(self) -> int:
        """Windows of the canvas start and end on multiples of this many pixels: the coarsest cached stride, so
        that every level's map is cut at whole pixels and keeps its size ratio to the others."""
        return max(self.stride(block) for block in self.blocks)

    def feature_shape(self, block: BlockSpec) -> tuple[int, int, int, int, int]:
        """Per-image shape of ``features/<block>``: (timestep, band, channel, y, x)."""
        return (len(self.timesteps), len(self.band_names), block.channels, *self.map_size(block))

    @staticmethod
    def feature_key(block: BlockSpec) -> str:
        """Batch and store key of ``block``'s features."""
        return feature_array(block.name)

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": [b.to_dict() for b in self.blocks], "timesteps": list(self.timesteps),
                "bands": self.bands, "canvas_size": self.canvas_size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheSpec:
        return cls(blocks=tuple(BlockSpec.from_dict(b) for b in data["blocks"]),
                   timesteps=tuple(int(t) for t in data["timesteps"]), bands=str(data["bands"]),
                   canvas_size=int(data["canvas_size"]))

    @classmethod
    def from_entry_attrs(cls, config: dict[str, Any], attrs: dict[str, Any]) -> CacheSpec:
        """Build the spec of a store entry from its config and the layout its attrs record (`EntryLayout`)."""
        layout = EntryLayout.from_attrs(attrs)
        blocks = tuple(BlockSpec(**asdict(block), level=layout.level_of(block.name)) for block in layout.blocks)
        return cls(blocks=blocks, timesteps=tuple(int(t) for t in config["timesteps"]),
                   bands=str(config["bands"]), canvas_size=int(config["canvas_size"]))
