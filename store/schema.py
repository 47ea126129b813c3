"""The store's layout facts: schema version, config keys, per-image array specs and the codec.

A config key hashes everything that changes the numbers, so a cache can never be reused for another model, block
set or timestep set; the same image under another key is another entry, never an overwrite.
"""

import hashlib
import json
import math
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
