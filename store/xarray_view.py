"""A lazy xarray view of one entry, for notebooks and analysis: named dims, coordinates, dask-backed data.

Every image is read through `Entry.read`, so a computed value has passed the image's checksum (a missing or damaged
chunk raises `DamagedImageError` naming it, never reads as zeros). Only done images are in the view. Features are
widened to float32: a dask reduction over float16 overflows (a mean of -0.044 came out as -0.0).
"""

import dask
import dask.array
import numpy as np
import xarray as xr

from dgss.store.entry import Entry
from dgss.store.feature_store import FeatureStore, StoreLike
from dgss.store.schema import FEATURE_PREFIX, IMAGE_DIM



def open(path: StoreLike, dataset: str, key: str | None = None) -> xr.Dataset:  # noqa: A001  (mirrors xr.open_*)
    """Open one entry's done images as a lazy `xarray.Dataset`; nothing but the `done` markers is read.

    Parameters
    ----------
    path
        The store (a path, or a zarr v3 `Store`).
    dataset, key
        The entry; `key` may be omitted when the dataset has one config only.

    Returns
    -------
    xarray.Dataset
        One dask-backed data variable per stored array (one dask chunk per image), named as the array ("/" kept,
        e.g. `features/up_blocks.1` with dims (image, timestep, band, up_blocks.1.channel, up_blocks.1.y,
        up_blocks.1.x), float32); an array whose name is also a dim or coordinate name (the RGB `image` array) is
        named `<name>_data`. Coordinates: `image` (ids of done images), `split` and `labelled` (whether the image
        has a vessel label; an unlabelled one's vessel arrays are all False) along image, and every coords entry
        of the store (timestep, band, ...). Attrs: the entry's attrs plus `dataset`, `key`, `config`, `blocks`
        (the block names of the `features/<block>` variables) and `images_not_done` (how many were left out).
    """
    entry = FeatureStore(path, create=False).entry(dataset, key)
    done = np.flatnonzero(entry.done())
    labelled = entry.labelled()
    taken = {IMAGE_DIM, "split", "labelled", *(dim for spec in entry.array_specs.values() for dim in spec.dims)}
    data_vars = {}
    for name, spec in entry.array_specs.items():
        variable = f"{name}_data" if name in taken else name
        dtype = np.dtype(np.float32) if name.startswith(FEATURE_PREFIX) else np.dtype(spec.dtype)
        images = [_checked_read(entry, name, int(index), spec.shape, dtype) for index in done]
        data = dask.array.stack(images) if images else dask.array.zeros((0, *spec.shape), dtype=dtype)
        data_vars[variable] = ((IMAGE_DIM, *spec.dims), data)
    coords = {
        IMAGE_DIM: [entry.image_ids[index] for index in done],
        "split": (IMAGE_DIM, [entry.splits[index] for index in done]),
        "labelled": (IMAGE_DIM, [bool(labelled[index]) for index in done]),
        **{dim: (dim, values) for dim, values in entry.coords.items()},
    }
    blocks = [name.removeprefix(FEATURE_PREFIX) for name in entry.array_specs if name.startswith(FEATURE_PREFIX)]
    attrs = {
        **entry.attrs,
        "dataset": entry.dataset,
        "key": entry.key,
        "config": entry.config,
        "blocks": blocks,
        "images_not_done": len(entry.image_ids) - len(done),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _checked_read(entry: Entry, name: str, index: int, shape: tuple[int, ...], dtype: np.dtype) -> dask.array.Array:
    """Image `index` of array `name` as one lazy chunk, read (and checked) by `Entry.read` when computed."""
    read = dask.delayed(lambda: entry.read(name, index).astype(dtype, copy=False), pure=True)
    return dask.array.from_delayed(read(dask_key_name=f"read-{entry.key}-{name}-{index}"), shape=shape, dtype=dtype)
