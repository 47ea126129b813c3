"""A lazy xarray view of one entry, for notebooks and analysis: named dims, coordinates, dask-backed data.

Features are float16: cast with `.astype("float32")` before reductions, because a dask mean of float16 overflows.
Dask reads the chunks directly, without the checks of `Entry.read`: run `dgss verify` on a store you doubt.
"""

import dask.array
import xarray as xr

from dgss.store.feature_store import FeatureStore, StoreLike
from dgss.store.schema import IMAGE_DIM

FEATURE_PREFIX = "features/"


def open(path: StoreLike, dataset: str, key: str | None = None) -> xr.Dataset:  # noqa: A001  (mirrors xr.open_*)
    """Open one entry as a lazy `xarray.Dataset`; nothing but the `done` markers is read.

    Parameters
    ----------
    path
        The store (a path, or a zarr v3 `Store`).
    dataset, key
        The entry; `key` may be omitted when the dataset has one config only.

    Returns
    -------
    xarray.Dataset
        One dask-backed data variable per stored array, named as the array ("/" kept, e.g.
        `features/up_blocks.1` with dims (image, timestep, band, up_blocks.1.channel, up_blocks.1.y,
        up_blocks.1.x)); an array whose name is also a dim or coordinate name (the RGB `image` array) is named
        `<name>_data`.
        Coordinates: `image` (ids), `split` and `done` along image, and every coords entry of the store
        (timestep, band, ...). Attrs: the entry's attrs plus `dataset`, `key`, `config` and `blocks` (the block
        names of the `features/<block>` variables). Only images with `done` True hold valid data.
    """
    entry = FeatureStore(path, create=False).entry(dataset, key)
    taken = {IMAGE_DIM, "split", "done", *(dim for spec in entry.array_specs.values() for dim in spec.dims)}
    data_vars = {}
    for name, spec in entry.array_specs.items():
        variable = f"{name}_data" if name in taken else name
        data_vars[variable] = ((IMAGE_DIM, *spec.dims), dask.array.from_zarr(entry.array(name)))
    coords = {
        IMAGE_DIM: entry.image_ids,
        "split": (IMAGE_DIM, entry.splits),
        "done": (IMAGE_DIM, entry.done()),
        **{dim: (dim, values) for dim, values in entry.coords.items()},
    }
    blocks = [name.removeprefix(FEATURE_PREFIX) for name in entry.array_specs if name.startswith(FEATURE_PREFIX)]
    attrs = {**entry.attrs, "dataset": entry.dataset, "key": entry.key, "config": entry.config, "blocks": blocks}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
