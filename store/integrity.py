"""Guarded reads of one image's chunk: a missing chunk is damage (never the fill value), so is one that does not
decode, and a CRC-32 written with the image says whether the decoded bytes are the bytes written."""

import zlib

import numpy as np
import zarr
from zarr.core.sync import sync

CHECKSUM_DTYPE = "uint32"
WRITE_CONFIG = {"write_empty_chunks": True}
"""Write every chunk, even one equal to the fill value, so that a missing chunk file always means damage."""


class ChunkDamage(Exception):
    """Why one image's chunk of one array is unusable; the entry turns it into a DamagedImageError naming both."""


def checksum(value: np.ndarray) -> int:
    """CRC-32 of the array's bytes in C order: about 2 GB/s, small next to decompressing them."""
    return zlib.crc32(np.ascontiguousarray(value))


def chunk_path(array: zarr.Array, index: int) -> str:
    """Store key of image `index`'s chunk (the image dim is chunked one image per chunk, the others whole)."""
    key = array.metadata.encode_chunk_key((index,) + (0,) * (array.ndim - 1))
    return f"{array.store_path.path}/{key}"


def read_image_chunk(array: zarr.Array, index: int) -> np.ndarray:
    """Image `index` of `array`; ChunkDamage when its chunk file is missing or does not decode."""
    path = chunk_path(array, index)
    if not sync(array.store_path.store.exists(path)):
        raise ChunkDamage(f"has no chunk file ({path} is missing)")
    try:
        return np.asarray(array[index])
    except (RuntimeError, ValueError) as error:  # Blosc's RuntimeError, a short chunk's ValueError
        raise ChunkDamage(f"has a chunk that does not decode ({path}: {error})") from None


def stored_keys(array: zarr.Array | zarr.Group) -> set[str]:
    """Every store key under `array` (or a group): one listing, for counting missing chunks without reading them."""

    async def collect() -> set[str]:
        return {key async for key in array.store_path.store.list_prefix(f"{array.store_path.path}/")}

    return sync(collect())
