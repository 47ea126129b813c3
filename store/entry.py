"""One cached (dataset, config key) entry: its per-image arrays and the `done` marker that makes writes safe.

An image is written as whole chunks (one image per chunk), each chunk file replaced atomically by zarr's local
store, and `done[i]` is set only after all of image i's arrays and their checksums (its value also says whether the
image has a vessel label: `DONE_LABELLED`, `DONE_UNLABELLED`). So processes may write different images at once
without locks, and a run killed at any point leaves no image marked done with incomplete data (runs
that share a store claim each image before computing it, see :meth:`Entry.claim`, so none is computed twice). Reads
check that the chunk exists, decodes and matches its checksum, so damage on disk is an error naming the image.
"""

from functools import cached_property
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from dgss.errors import DamagedImageError, StoreError
from dgss.store.claims import Claim, claims_folder, try_claim
from dgss.store.integrity import WRITE_CONFIG, ChunkDamage, checksum, chunk_path, read_image_chunk, stored_keys
from dgss.store.schema import CHECKSUM_ARRAY, DONE_ARRAY, DONE_LABELLED, DONE_UNLABELLED, ArraySpec
from dgss.store.write_access import store_writes

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
        return self._open(name)

    @cached_property
    def has_checksums(self) -> bool:
        """Whether images carry checksums; entries written before dgss stored them do not (they read unverified)."""
        return bool(sync(self._group.store_path.store.exists(f"{self._group.path}/{CHECKSUM_ARRAY}/zarr.json")))

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
        return self._markers() != 0

    def labelled(self) -> np.ndarray:
        """Per image, whether it is done with a vessel label, shape (image,) bool (every done image of an entry
        written before dgss extracted unlabelled images)."""
        return self._markers() == DONE_LABELLED

    def _markers(self) -> np.ndarray:
        """The `done` markers, shape (image,) uint8: 0 not done, else `DONE_LABELLED` or `DONE_UNLABELLED`."""
        try:
            return np.asarray(self._open(DONE_ARRAY)[:], dtype=np.uint8)
        except (RuntimeError, ValueError) as error:
            raise StoreError(
                f"done markers of {self.dataset}/{self.key} in {self._location} do not decode ({error}): every file "
                f"under {self._group.path}/{DONE_ARRAY}/c should be 1 byte; delete any other and re-run extract"
            ) from None

    def missing_chunk_images(self) -> list[int]:
        """Done images with a chunk file missing, from one listing of the entry's keys: cheap enough for `dgss info`."""
        names = [*self.array_specs, *([CHECKSUM_ARRAY] if self.has_checksums else [])]
        arrays = [self._open(name) for name in names]
        keys = stored_keys(self._group)
        done = np.flatnonzero(self.done())
        return [int(index) for index in done if any(chunk_path(array, index) not in keys for array in arrays)]

    def write_image(self, index: int, arrays: dict[str, np.ndarray], *, labelled: bool = True) -> None:
        """Write all of one image's arrays and their checksums, then mark it done, with or without a vessel label.

        Parameters
        ----------
        index
            Store index of the image (position in `image_ids`).
        arrays
            Every array of the entry for this image, each of its spec's shape (e.g. `features/<block>`:
            (timestep, band, channel, y, x)); values are cast to the spec's dtype when numpy calls that cast
            "same_kind" (float32 -> float16 is, float -> int is not).
        labelled
            Whether the image's vessel arrays are a label; an unlabelled image's are all False, and training and
            evaluation leave it out.

        A done image is first unmarked, so an overwrite killed half-way never leaves mixed data marked done.
        """
        self._check_index(index)
        values = self._checked_values(arrays)
        done = self._open(DONE_ARRAY)
        with store_writes(self._location):
            if self._is_done(index):
                done[index] = 0
            for name, value in values.items():
                self.array(name)[index] = value
            if self.has_checksums:
                names = self._checksum_names()
                self._open(CHECKSUM_ARRAY)[index] = [checksum(values[name]) for name in names]
            done[index] = DONE_LABELLED if labelled else DONE_UNLABELLED

    def claim(self, index: int) -> Claim | None:
        """Claim image `index` for computing it, or None while another live run holds it (see `dgss.store.claims`).

        Release the claim once the image is written; runs that honour claims never compute an image at once.
        """
        self._check_index(index)
        folder = claims_folder(self._group.store_path.store, self._group.path)
        with store_writes(self._location):
            return try_claim(folder / f"{index}.claim" if folder else None)

    def is_done(self, index: int, *, labelled: bool | None = None) -> bool:
        """Whether image `index` is marked done (one 1-byte read): a run checks it again after claiming the image.

        With `labelled`, whether it is done with (True) or without (False) a vessel label: an image whose label
        was added or removed since it was extracted is not done as it is now.
        """
        self._check_index(index)
        marker = self._marker(index)
        if labelled is None:
            return marker != 0
        return marker == (DONE_LABELLED if labelled else DONE_UNLABELLED)

    def clear(self, index: int) -> None:
        """Unmark image `index` as done (for `dgss verify --repair`); the next extract run recomputes it."""
        self._check_index(index)
        with store_writes(self._location):
            self._open(DONE_ARRAY)[index] = 0

    def read(self, name: str, index: int) -> np.ndarray:
        """One image's array `name`, shape `array_specs[name].shape`, checked against its checksum when it has one.

        StoreError if that image is not done; DamagedImageError if its chunk is missing, does not decode, or does
        not match its checksum (a missing chunk never reads as the fill value).
        """
        self._check_index(index)
        array = self.array(name)
        if not self._is_done(index):
            raise StoreError(
                f"image {self.image_ids[index]!r} (index {index}) of {self.dataset}/{self.key} in {self._location} "
                f"is not done: run `dgss extract --dataset {self.dataset} --store {self._location}` to finish it"
            )
        try:
            value = read_image_chunk(array, index)
            expected = self._expected_checksum(name, index)
        except ChunkDamage as damage:
            raise self._damaged(index, name, str(damage)) from None
        found = checksum(value) if expected is not None else None
        if found != expected:
            path = chunk_path(array, index)
            reason = f"does not match its checksum (crc32 of {path}: {found:08x}, written {expected:08x})"
            raise self._damaged(index, name, reason)
        return value

    def _is_done(self, index: int) -> bool:
        """For the per-read check."""
        return self._marker(index) != 0

    def _marker(self, index: int) -> int:
        """Image `index`'s marker alone (one 1-byte file)."""
        done = self._open(DONE_ARRAY)
        try:
            return int(done[index])
        except (RuntimeError, ValueError) as error:
            raise StoreError(
                f"done marker of image {self.image_ids[index]!r} of {self.dataset}/{self.key} in {self._location} "
                f"does not decode ({error}): delete {chunk_path(done, index)} and re-run extract to recompute it"
            ) from None

    def _expected_checksum(self, name: str, index: int) -> int | None:
        """The CRC-32 written with image `index`'s array `name`; None for entries made before checksums."""
        if not self.has_checksums:
            return None
        try:
            row = read_image_chunk(self._open(CHECKSUM_ARRAY), index)
        except ChunkDamage as damage:
            raise ChunkDamage(f"cannot be checked: its {CHECKSUM_ARRAY} row {damage}") from None
        return int(row[self._checksum_names().index(name)])

    def _checksum_names(self) -> list[str]:
        """Array names in the order of a checksum row (kept with the checksum array, so the order is never guessed)."""
        return list(self._open(CHECKSUM_ARRAY).attrs["arrays"])

    def _damaged(self, index: int, name: str, reason: str) -> DamagedImageError:
        image_id = self.image_ids[index]
        return DamagedImageError(
            f"image {image_id!r} (index {index}) of {self.dataset}/{self.key} in {self._location}: array {name!r} "
            f"{reason}; run `dgss verify --store {self._location} --repair`, then "
            f"`dgss extract --dataset {self.dataset} --store {self._location}` to recompute it",
            image_id=image_id,
            array=name,
            reason=reason,
        )

    def _open(self, name: str) -> zarr.Array:
        """The array `name`, opened once, writing every chunk; StoreError naming its metadata file if unreadable."""
        if name not in self._arrays:
            try:
                self._arrays[name] = self._group[name].with_config(WRITE_CONFIG)
            except (KeyError, ValueError) as error:  # a missing zarr.json, or JSON / metadata that does not parse
                raise StoreError(
                    f"array {name!r} of {self.dataset}/{self.key} in {self._location} has missing or unreadable "
                    f"metadata ({self._group.path}/{name}/zarr.json: {error}): no image of it reads; "
                    f"extract into a new store, or delete {self._group.path} from this one and re-extract"
                ) from None
        return self._arrays[name]

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
