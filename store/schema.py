"""The store's layout facts: schema version, config keys, per-image array specs and the codec, and the contract
between extraction and aggregation: the feature layout an entry's attrs record (blocks, levels, bands).

A config key hashes everything that changes the numbers, so a cache can never be reused for another model, block
set or timestep set; the same image under another key is another entry, never an overwrite.
"""

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr.codecs

from dgss.errors import StoreError

SCHEMA_VERSION: int = 1
"""Layout version of a dgss store; a store written with another version must be re-extracted."""

DTYPES: tuple[str, ...] = ("float16", "float32", "float64", "uint8", "bool", "int64")
IMAGE_DIM = "image"
DONE_ARRAY = "done"
DONE_LABELLED = 1
"""`done` marker of an image written with its vessel label; entries made before unlabelled images only hold these."""
DONE_UNLABELLED = 2
"""`done` marker of an image written without a vessel label (its vessel arrays are all False): never trained on or
scored. Written in the marker itself, so an image's label state lands in the same write as its completion."""
FEATURE_PREFIX = "features/"
"""Name prefix of the feature arrays: one array per tapped block, `features/<block>` (see `feature_array`)."""
CHECKSUM_ARRAY = "checksums"
"""Per image, a CRC-32 of each array (image, array) uint32, written before `done`; entries made before it lack it."""


def canonical_config(config: Any, *, what: str = "config") -> str:
    """Serialise a config as canonical JSON (sorted keys, no spaces), the text its key is a hash of.

    numpy scalars count as their Python values, so `np.int64(10)` and `10` give the same key.
    """
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_plain_scalar)
    except (TypeError, ValueError) as error:
        raise StoreError(f"{what} is not plain JSON ({error}): pass str/int/float/bool/list/dict values") from None


def _plain_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON")


def config_key(config: dict[str, Any]) -> str:
    """The entry key of a config: first 16 hex chars of the sha256 of its canonical JSON."""
    return hashlib.sha256(canonical_config(config).encode()).hexdigest()[:16]


def compressors() -> list[zarr.codecs.BloscCodec]:
    """Blosc zstd with byte shuffle: zarr's own codec, so shuffle sees the dtype (3.2x vs 1.9x on smooth float16)."""
    return [zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")]


@dataclass(frozen=True, kw_only=True)
class ArraySpec:
    """Shape, dtype and dim names of one array for one image (the leading `image` dim is implied).

    Parameters
    ----------
    shape
        Per-image shape, without the leading image dim.
    dtype
        One of :data:`DTYPES`.
    dims
        Names of the per-image dims; within one entry a name must always mean the same size.
    """

    shape: tuple[int, ...]
    dtype: str
    dims: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(size) for size in self.shape))
        object.__setattr__(self, "dims", tuple(str(dim) for dim in self.dims))
        if self.dtype not in DTYPES:
            raise StoreError(f"array dtype {self.dtype!r} is not stored by dgss: use one of {', '.join(DTYPES)}")
        if len(self.dims) != len(self.shape):
            raise StoreError(f"array spec has shape {self.shape} but dims {self.dims}: give one dim name per axis")
        if IMAGE_DIM in self.dims or len(set(self.dims)) != len(self.dims):
            raise StoreError(f"array dims {self.dims} repeat a name or use {IMAGE_DIM!r}, which the store adds")
        if any(size < 1 for size in self.shape):
            raise StoreError(f"array spec shape {self.shape} has an empty axis: every axis needs size >= 1")

    @property
    def nbytes(self) -> int:
        """Raw bytes of one image's array, uncompressed."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as kept in the entry attributes."""
        return {"shape": list(self.shape), "dtype": self.dtype, "dims": list(self.dims)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArraySpec":
        """Inverse of :meth:`to_dict`."""
        return cls(shape=tuple(data["shape"]), dtype=data["dtype"], dims=tuple(data["dims"]))


def feature_array(block: str) -> str:
    """The name of a block's feature array in an entry (and of its tensor in a batch)."""
    return f"{FEATURE_PREFIX}{block}"


LEVELS = ("coarse", "middle", "fine")
"""The levels a head fuses, coarse to fine; an entry's "levels" attr lists the blocks of each."""
RAW_BANDS = "none"
"""The `bands` setting that caches each block's map as it is."""
BAND_NAMES = {"haar": ("LL", "LH", "HL", "HH"), RAW_BANDS: ("raw",)}
"""Band coordinate values of every feature array, per `bands`: one level of the orthonormal 2-D Haar transform, or
the raw map."""


def band_names(bands: str) -> tuple[str, ...]:
    """Band coordinate values for a `bands` setting."""
    return BAND_NAMES[bands]


def halves_maps(bands: str) -> bool:
    """Whether cached maps are bands of one Haar level: half the block map on each side, so strides double."""
    return bands != RAW_BANDS


def banded_size(size: int, bands: str) -> int:
    """Side of a block's cached maps for a block map of side `size`."""
    return size // 2 if halves_maps(bands) else size


@dataclass(frozen=True, kw_only=True)
class BlockLayout:
    """A tapped block: its channels and its output map size. In an entry's attrs the size is the map on the whole
    canvas, before any band split."""

    name: str
    channels: int
    height: int
    width: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "channels": self.channels, "height": self.height, "width": self.width}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BlockLayout":
        return cls(name=str(data["name"]), channels=int(data["channels"]), height=int(data["height"]),
                   width=int(data["width"]))


@dataclass(frozen=True, kw_only=True)
class EntryLayout:
    """The feature layout of an entry, as its attrs record it: the blocks in cache order ("blocks") and the blocks
    of each level ("levels"). The extractor writes it (`to_attrs`); aggregation reads it back (`from_attrs`)."""

    blocks: tuple[BlockLayout, ...]
    levels: Mapping[str, Sequence[str]]

    def to_attrs(self) -> dict[str, Any]:
        return {"blocks": [block.to_dict() for block in self.blocks],
                "levels": {level: list(names) for level, names in self.levels.items()}}

    def level_of(self, block: str) -> str:
        """The level `block` belongs to (`from_attrs` checked that it has exactly one)."""
        return next(level for level, names in self.levels.items() if block in names)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> "EntryLayout":
        """Read the layout from an entry's attrs.

        Raises
        ------
        StoreError
            The attrs lack "blocks" or "levels", or a block is in no level, in two, or only in a level.
        """
        for name in ("blocks", "levels"):
            if name not in attrs:
                raise StoreError(f"entry attrs lack {name!r}; re-extract the entry with this dgss version")
        level_of: dict[str, str] = {}
        for level, names in attrs["levels"].items():
            for name in names:
                if name in level_of:
                    raise StoreError(f"block {name!r} is in levels {level_of[name]!r} and {level!r}; "
                                     "give each block one level")
                level_of[name] = level
        blocks = tuple(BlockLayout.from_dict(block) for block in attrs["blocks"])
        for block in blocks:
            if block.name not in level_of:
                raise StoreError(f"block {block.name!r} is in no level of {sorted(attrs['levels'])}; "
                                 "re-extract the entry with this dgss version")
        unknown = sorted(set(level_of) - {block.name for block in blocks})
        if unknown:
            raise StoreError(f"levels name blocks {unknown} that the entry's blocks lack; re-extract the entry")
        return cls(blocks=blocks, levels={level: tuple(names) for level, names in attrs["levels"].items()})
