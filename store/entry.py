"""One cached (dataset, config key) entry: its per-image arrays and the `done` marker that makes writes safe.

An image is written as whole chunks (one image per chunk), each chunk file replaced atomically by zarr's local
store, and `done[i]` is set only after all of image i's arrays. So processes may write different images at once
without locks, and a run killed at any point leaves no image marked done with incomplete data.
"""

from typing import Any

import numpy as np
import zarr

from dgss.store.errors import StoreError
from dgss.store.schema import DONE_ARRAY, ArraySpec

ENTRY_ATTR = "dgss_entry"
"""Group attribute that describes an entry; written last, so a group without it is an unfinished creation."""


class Entry:
    """A handle on one entry of a :class:`~dgss.store.FeatureStore`; get it from `require_entry` or `entry`.

    Attributes
    ----------
    dataset, key
        Dataset name and config key (`config_key(config)`).
    config
        The config the key hashes, as canonical JSON values (tuples read back as lists).
    image_ids, splits
        Per image, in store order: its id and its split.
    attrs
        Caller's provenance attributes plus `dgss_version`, `zarr_version` and `created`.
    array_specs
        Per array name (may contain "/"), its per-image :class:`ArraySpec`.
    coords
        1-D coordinate values per dim name (e.g. "timestep", "band").
    """

    def __init__(self, group: zarr.Group, location: str) -> None:
        description = group.attrs[ENTRY_ATTR]
        self._group = group
        self._location = location
        self._arrays: dict[str, zarr.Array] = {}
        self.dataset: str = description["dataset"]
        self.key: str = description["key"]
        self.config: dict[str, Any] = description["config"]
        self.image_ids: list[str] = list(description["image_ids"])
        self.splits: list[str] = list(description["splits"])
        self.array_specs: dict[str, ArraySpec] = {
            name: ArraySpec.from_dict(spec) for name, spec in description["arrays"].items()
        }
        self.coords: dict[str, list[Any]] = {dim: list(values) for dim, values in description["coords"].items()}
        self.attrs: dict[str, Any] = {name: value for name, value in group.attrs.items() if name != ENTRY_ATTR}

    def __repr__(self) -> str:
        return f"Entry(dataset={self.dataset!r}, key={self.key!r}, images={len(self.image_ids)})"

    @property
    def group(self) -> zarr.Group:
        """The entry's zarr group (for byte counts and lower-level access)."""
        return self._group

    def array(self, name: str) -> zarr.Array:
        """The zarr array `name` (image, *spec.dims): a lazy handle; check :meth:`done` before trusting an image."""
        if name not in self.array_specs:
            raise StoreError(
                f"entry {self.dataset}/{self.key} in {self._location} has no array {name!r}; "
                f"it has: {', '.join(self.array_specs)}"
            )
        if name not in self._arrays:
            self._arrays[name] = self._group[name]
        return self._arrays[name]

    def indices(self, split: str | None = None) -> list[int]:
        """Store indices of the images in `split` (all images when None), in store order."""
        if split is None:
            return list(range(len(self.image_ids)))
        if split not in self.splits:
            known = ", ".join(sorted(set(self.splits)))
            raise StoreError(f"entry {self.dataset}/{self.key} has no split {split!r}; its splits: {known}")
        return [index for index, name in enumerate(self.splits) if name == split]

    def done(self) -> np.ndarray:
        """Completion marker per image, shape (image,) bool."""
        return np.asarray(self._done_array()[:], dtype=bool)

    def write_image(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Write all of one image's arrays, then mark it done.

        Parameters
        ----------
        index
            Store index of the image (position in `image_ids`).
        arrays
            Every array of the entry for this image, each of its spec's shape (e.g. `features/<block>`:
            (timestep, band, channel, y, x)); values are cast to the spec's dtype when numpy calls that cast
            "same_kind" (float32 -> float16 is, float -> int is not).

        A done image is first unmarked, so an overwrite killed half-way never leaves mixed data marked done.
        """
        self._check_index(index)
        values = self._checked_values(arrays)
        done = self._done_array()
        if done[index]:
            done[index] = 0
        for name, value in values.items():
            self.array(name)[index] = value
        done[index] = 1

    def clear(self, index: int) -> None:
        """Unmark image `index` as done (for `--overwrite`); its data is rewritten by the next `write_image`."""
        self._check_index(index)
        self._done_array()[index] = 0

    def read(self, name: str, index: int) -> np.ndarray:
        """One image's array `name`, shape `array_specs[name].shape`; StoreError if that image is not done."""
        self._check_index(index)
        array = self.array(name)
        if not self._done_array()[index]:
            raise StoreError(
                f"image {self.image_ids[index]!r} (index {index}) of {self.dataset}/{self.key} in {self._location} "
                f"is not done: run `dgss extract --dataset {self.dataset} --store {self._location}` to finish it"
            )
        return np.asarray(array[index])

    def _done_array(self) -> zarr.Array:
        if DONE_ARRAY not in self._arrays:
            self._arrays[DONE_ARRAY] = self._group[DONE_ARRAY]
        return self._arrays[DONE_ARRAY]

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.image_ids):
            raise StoreError(
                f"image index {index} is out of range for {self.dataset}/{self.key} "
                f"({len(self.image_ids)} images: 0..{len(self.image_ids) - 1})"
            )

    def _checked_values(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check names, shapes and dtypes of every array before anything is written; return them cast."""
        missing = sorted(set(self.array_specs) - set(arrays))
        extra = sorted(set(arrays) - set(self.array_specs))
        if missing or extra:
            raise StoreError(
                f"write_image to {self.dataset}/{self.key} needs exactly the entry's arrays: "
                f"missing {missing}, unexpected {extra}"
            )
        values = {}
        for name, spec in self.array_specs.items():
            value = np.asarray(arrays[name])
            if value.shape != spec.shape:
                raise StoreError(f"array {name!r} has shape {value.shape}, entry expects {spec.shape} {spec.dims}")
            if not np.can_cast(value.dtype, spec.dtype, casting="same_kind"):
                raise StoreError(f"array {name!r} has dtype {value.dtype}, which does not cast to {spec.dtype}")
            values[name] = value.astype(spec.dtype, copy=False)
        return values
