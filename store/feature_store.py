"""The feature store: one Zarr v3 store holding many datasets x many extraction configs, one entry each.

Layout: root group attrs {"dgss_schema": SCHEMA_VERSION}; entry groups at `<dataset>/<key>`; inside an entry one
array per name (a "/" in a name makes nested groups) with a leading `image` dim chunked one image per chunk, and a
`done` (image,) uint8 marker, written after a `checksums` (image, array) uint32 row of one CRC-32 per array (absent
in entries written before dgss stored checksums: their images read unverified). Failing calls check everything
before they write, so nothing cached is touched. A store is a local directory, a zarr `Store`, or any fsspec URL
(`s3://bucket/cache.zarr`, `gs://...`, `memory://...`): credentials and endpoint come from the environment, as
fsspec and s3fs read them (AWS_* variables, fsspec's config).
"""

import hashlib
import importlib.metadata
import json
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fsspec.core
import zarr
from fsspec.implementations.local import LocalFileSystem
from zarr.abc.store import Store
from zarr.core.sync import sync
from zarr.errors import ContainsGroupError

from dgss.errors import ConfigMismatchError, StoreError
from dgss.store.claims import claims_folder, wait_for_claim
from dgss.store.entry import ENTRY_ATTR, Entry
from dgss.store.integrity import CHECKSUM_DTYPE
from dgss.store.schema import (
    CHECKSUM_ARRAY,
    DONE_ARRAY,
    IMAGE_DIM,
    SCHEMA_VERSION,
    ArraySpec,
    canonical_config,
    compressors,
    config_key,
)
from dgss.store.write_access import store_writes

SCHEMA_ATTR = "dgss_schema"
CREATE_CLAIM = "create.claim"
PROVENANCE_ATTRS = ("dgss_version", "zarr_version", "created")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")

StoreLike = str | Path | Store


class _NoStore(StoreError):
    """Nothing at the path yet (a missing or empty directory, an empty prefix): what `FeatureStore.if_present` skips."""


@dataclass(frozen=True, kw_only=True)
class EntryInfo:
    """What is cached in one entry and what it costs on disk (for `dgss info`)."""

    dataset: str
    key: str
    config: dict[str, Any]
    n_done: int
    n_labelled: int  # done images with a vessel label (the others are never trained on or scored)
    n_damaged: int  # done images with a chunk file missing (a listing finds them; `dgss verify` finds the rest)
    n_total: int
    bytes_stored: int  # every stored byte under the entry, incl. images not done (one listing on an object store)
    bytes_raw: int  # uncompressed bytes of the done images

    @property
    def compression_ratio(self) -> float:
        """Raw bytes of the done images over bytes stored (0 when nothing is stored)."""
        return self.bytes_raw / self.bytes_stored if self.bytes_stored else 0.0


class FeatureStore:
    """A dgss feature store on a local path, an fsspec URL (`s3://bucket/cache.zarr`) or any zarr v3 `Store`.

    Parameters
    ----------
    path
        Directory or URL of the store: created when missing or empty (if `create`), else it must be a dgss store
        written with this :data:`SCHEMA_VERSION`. Opening an existing store writes nothing.
    create
        Whether a missing store may be created.
    """

    def __init__(self, path: StoreLike, *, create: bool = True) -> None:
        path = local_path(path)
        self.location = str(path) if not isinstance(path, Store) else repr(path)
        with store_writes(self.location):
            self._root = _open_root(path, self.location, create=create)

    def __repr__(self) -> str:
        return f"FeatureStore({self.location!r})"

    @classmethod
    def if_present(cls, path: StoreLike) -> "FeatureStore | None":
        """The store at `path`, checked as the constructor checks it, or None where there is none yet; creates
        nothing, so a run that fails before it has anything to write leaves no empty store behind."""
        try:
            return cls(path, create=False)
        except _NoStore:
            return None

    def has_entry(self, dataset: str, key: str) -> bool:
        """Whether the entry of (`dataset`, `key`) exists, complete (a creation killed half-way is not)."""
        path = f"{_dataset_group(dataset)}/{key}"
        return path in self._root and ENTRY_ATTR in self._root[path].attrs

    def delete_entry(self, dataset: str, key: str) -> None:
        """Remove the entry of (`dataset`, `key`) with all it holds: how `dgss extract --overwrite` replaces the
        entry of a folder whose files changed (other images, other ids). Nothing happens where there is none."""
        path = f"{_dataset_group(dataset)}/{key}"
        with store_writes(self.location):
            if path in self._root:
                del self._root[path]

    def require_entry(
        self,
        *,
        dataset: str,
        config: dict[str, Any],
        image_ids: list[str],
        splits: list[str],
        arrays: dict[str, ArraySpec],
        coords: dict[str, list[Any]],
        attrs: dict[str, Any],
    ) -> Entry:
        """The entry of (`dataset`, `config_key(config)`), created with empty arrays if absent.

        An existing entry must have the same image ids, splits, arrays and coords (ConfigMismatchError naming the
        field otherwise); its attributes are left as they are. Call it once, before parallel writers start; they
        get the entry with :meth:`entry`. Runs that call it at once on one store are safe: one creates the entry,
        the others wait for it and check it.
        """
        key = config_key(config)
        description = _entry_description(dataset, key, config, image_ids, splits, arrays, coords)
        reserved = sorted(set(attrs) & {ENTRY_ATTR, *PROVENANCE_ATTRS})
        if reserved:
            raise StoreError(f"entry attrs {reserved} are set by the store itself: rename them")
        plain_attrs = _json_values(attrs, "entry attrs")
        path = f"{_dataset_group(dataset)}/{key}"
        found = self._complete_entry(path, description)
        if found is not None:
            return found
        # Runs that start together on a fresh store create the entry one at a time; the others then validate it.
        with store_writes(self.location):
            folder = claims_folder(self._root.store, path)
            claim = wait_for_claim(folder / CREATE_CLAIM if folder else None)
            try:
                found = self._complete_entry(path, description)
                return found or self._create_entry(path, description, arrays, {**plain_attrs, **_provenance()})
            finally:
                claim.release()

    def _complete_entry(self, path: str, description: dict[str, Any]) -> Entry | None:
        """The entry at `path` checked against `description`, or None while it is absent or unfinished."""
        if path not in self._root or ENTRY_ATTR not in self._root[path].attrs:
            return None
        entry = Entry(self._root[path], self.location)
        _check_same(entry, description, self.location)
        return entry

    def _create_entry(
        self, path: str, description: dict[str, Any], arrays: dict[str, ArraySpec], attrs: dict[str, Any]
    ) -> Entry:
        """Create the entry's arrays under the creation claim, description last.

        A group found without ENTRY_ATTR was killed while being created (no image can have been written into it):
        its arrays are replaced one by one, never the group, so the claims folder inside it survives.
        """
        n_images = len(description["image_ids"])
        if path in self._root:
            group = self._root[path]
            group.attrs.update(attrs)
        else:
            group = self._root.create_group(path, attributes=attrs)
        for name, spec in arrays.items():
            group.create_array(
                name,
                shape=(n_images, *spec.shape),
                chunks=(1, *spec.shape),
                dtype=spec.dtype,
                compressors=compressors(),
                dimension_names=(IMAGE_DIM, *spec.dims),
                overwrite=True,
            )
        group.create_array(
            CHECKSUM_ARRAY,
            shape=(n_images, len(arrays)),
            chunks=(1, len(arrays)),
            dtype=CHECKSUM_DTYPE,
            compressors=None,
            dimension_names=(IMAGE_DIM, "checksummed_array"),
            attributes={"arrays": list(arrays), "algorithm": "crc32"},
            overwrite=True,
        )
        group.create_array(
            DONE_ARRAY,
            shape=(n_images,),
            chunks=(1,),
            dtype="uint8",
            compressors=None,
            dimension_names=(IMAGE_DIM,),
            overwrite=True,
        )
        group.attrs.update({ENTRY_ATTR: description})
        return Entry(group, self.location)

    def entries(self) -> list[EntryInfo]:
        """Every complete entry, sorted by dataset then key, with done counts and byte counts."""
        return [_entry_info(entry) for entry in self._all_entries()]

    def open_entries(self, dataset: str | None = None) -> list[Entry]:
        """Handles on every complete entry (of `dataset` only, when given: StoreError if it has none)."""
        found = [entry for entry in self._all_entries() if dataset is None or entry.dataset == dataset]
        if dataset is not None and not found:
            raise self._absent(dataset)
        return found

    def entry(self, dataset: str, key: str | None = None) -> Entry:
        """The entry of `dataset` under `key`; with no key, the dataset's only entry.

        StoreError listing what is cached when it is absent, or listing the keys when `key` is None and there are
        several.
        """
        candidates = [entry for entry in self._all_entries() if entry.dataset == dataset]
        if key is not None:
            candidates = [entry for entry in candidates if entry.key == key]
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            keys = ", ".join(entry.key for entry in candidates)
            raise StoreError(f"dataset {dataset!r} has several configs in {self.location}: {keys}; pass one key")
        raise self._absent(dataset, key)

    def _absent(self, dataset: str, key: str | None = None) -> StoreError:
        wanted = dataset if key is None else f"{dataset} (key {key})"
        return StoreError(
            f"no features for {wanted} in {self.location}; cached: {self._cached_text()}; "
            f"`dgss extract --dataset {dataset} --store {self.location}` would add it"
        )

    def _all_entries(self) -> list[Entry]:
        found = []
        try:
            for _, dataset_group in self._root.groups():
                for _, group in dataset_group.groups():
                    if ENTRY_ATTR in group.attrs:
                        found.append(Entry(group, self.location))
        except json.JSONDecodeError:
            raise StoreError(
                f"the store {self.location} has damaged metadata ({_unparsable_metadata(self.location)} is not JSON): "
                "restore it from a copy, or delete that dataset's folder and extract it again"
            ) from None
        return sorted(found, key=lambda entry: (entry.dataset, entry.key))

    def _cached_text(self) -> str:
        by_dataset: dict[str, list[str]] = {}
        for entry in self._all_entries():
            by_dataset.setdefault(entry.dataset, []).append(entry.key)
        if not by_dataset:
            return "nothing"
        return "; ".join(f"{dataset} [{', '.join(keys)}]" for dataset, keys in by_dataset.items())


def is_url(path: StoreLike) -> bool:
    """Whether `path` is an fsspec URL (`s3://...`) rather than a local path (a `Path` can never be one)."""
    return isinstance(path, str) and "://" in path


def local_path(path: StoreLike) -> StoreLike:
    """A URL that fsspec resolves to the local file system (`file:///shared/cache.zarr`) as the path it names, so it
    behaves exactly as that path does (folders created, claims taken); anything else as given. Percent escapes are
    decoded, as in every file URI (`Path.as_uri()` writes a space as %20)."""
    if not is_url(path):
        return path
    protocol, _ = fsspec.core.split_protocol(path)
    if protocol not in LocalFileSystem.protocol:
        return path
    return Path(LocalFileSystem._strip_protocol(urllib.parse.unquote(path)))


def store_location(path: str | Path) -> str:
    """How a run records its store: a URL as given, a local path made absolute (so the run finds it from anywhere)."""
    path = local_path(path)
    return path if is_url(path) else str(Path(path).resolve())


def _unparsable_metadata(location: str) -> str:
    """The first `zarr.json` under a local store that does not parse ("a zarr.json" elsewhere)."""
    for path in sorted(Path(location).rglob("zarr.json")) if Path(location).is_dir() else []:
        try:
            json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return str(path)
    return "a zarr.json"


def _open_root(path: StoreLike, location: str, *, create: bool) -> zarr.Group:
    """Open (or create) the root group, refusing files, foreign directories and other schema versions."""
    if isinstance(path, Store):
        store = path
    elif is_url(path):
        store = _url_store(location)
    else:
        directory = Path(path)
        if directory.is_file():
            raise StoreError(f"store path {location} is a file: give a directory (a new one or a dgss store)")
        store = zarr.storage.LocalStore(directory)
    if not sync(store.exists("zarr.json")):
        try:
            created = _create_root(store, location, create=create)
        except FileNotFoundError as error:  # an object store whose bucket does not exist
            raise StoreError(
                f"cannot open the store {location} ({error}): create its bucket first, or fix the URL"
            ) from None
        if created is not None:
            return created
    try:
        root = zarr.open_group(store, mode="r+", zarr_format=3)
    except json.JSONDecodeError:
        raise StoreError(
            f"the store {location} has damaged metadata ({location}/zarr.json is not JSON): restore it from a copy, "
            "or extract into a new store"
        ) from None
    except ValueError:  # zarr's ContainsArrayError (an array at the root)
        raise StoreError(f"{location} is a zarr store but not a dgss store: give a new or empty directory")
    version = root.attrs.get(SCHEMA_ATTR)
    if version is None:
        raise StoreError(f"{location} is a zarr store but not a dgss store: give a new or empty directory")
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{location} was written with dgss store schema {version}, this dgss reads schema {SCHEMA_VERSION}: "
            f"re-extract into a new store, or open it with a dgss release that uses schema {version}"
        )
    return root


def _url_store(url: str) -> zarr.storage.FsspecStore:
    """The store at an fsspec URL; StoreError naming the package to install or the URL that fsspec does not know.

    Listings are never cached: worker processes write the store meanwhile, and a cached listing would hide their
    objects (a done image would read as damaged).
    """
    protocol, location = fsspec.core.split_protocol(url)
    if not location.strip("/"):
        raise StoreError(f"store URL {url} names no bucket or folder: give one, e.g. {protocol}://bucket/cache.zarr")
    try:
        return zarr.storage.FsspecStore.from_url(url, storage_options={"use_listings_cache": False})
    except ImportError as error:
        fix = "install dgss[s3] (pip install 'dgss[s3]')" if url.startswith(("s3://", "s3a://")) else str(error)
        raise StoreError(f"cannot open the store {url}: {fix}") from None
    except ValueError as error:  # fsspec's "Protocol not known"
        raise StoreError(
            f"cannot open the store {url} ({error}): give a local directory or a URL fsspec knows (s3://, gs://, ...)"
        ) from None


def _create_root(store: Store, location: str, *, create: bool) -> zarr.Group | None:
    """A new store's root group; None when another run created it first (the caller then opens and checks it)."""
    if not sync(store.is_empty("")):
        if sync(store.exists("zarr.json")):
            return None
        raise StoreError(f"{location} is not empty and not a dgss store (no zarr.json): give a new or empty directory")
    if not create:
        raise _NoStore(f"no dgss store at {location}: run `dgss extract --store {location}` to make one")
    try:
        return zarr.open_group(store, mode="w-", zarr_format=3, attributes={SCHEMA_ATTR: SCHEMA_VERSION})
    except (FileExistsError, ContainsGroupError):
        return None


def _dataset_group(dataset: str) -> str:
    """Group name of a dataset: the name itself when plain, else a readable slug plus a hash (e.g. folder:PATH)."""
    if _PLAIN_NAME.fullmatch(dataset):
        return dataset
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "_", dataset).strip("._")[:48]
    return f"{slug}-{hashlib.sha256(dataset.encode()).hexdigest()[:8]}"


def _provenance() -> dict[str, Any]:
    return {
        "dgss_version": importlib.metadata.version("dgss"),
        "zarr_version": zarr.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _entry_description(
    dataset: str,
    key: str,
    config: dict[str, Any],
    image_ids: list[str],
    splits: list[str],
    arrays: dict[str, ArraySpec],
    coords: dict[str, list[Any]],
) -> dict[str, Any]:
    """Validate an entry's layout and return its JSON description (the ENTRY_ATTR value)."""
    if not image_ids or len(splits) != len(image_ids):
        raise StoreError(
            f"entry needs >= 1 image and one split per image: got {len(image_ids)} ids, {len(splits)} splits"
        )
    if len(set(image_ids)) != len(image_ids):
        raise StoreError(f"image ids of dataset {dataset!r} are not unique")
    if not arrays:
        raise StoreError("entry needs at least one array")
    _check_array_names(list(arrays))
    sizes: dict[str, int] = {}
    for name, spec in arrays.items():
        for dim, size in zip(spec.dims, spec.shape):
            if sizes.setdefault(dim, size) != size:
                raise StoreError(f"dim {dim!r} has size {sizes[dim]} in one array and {size} in {name!r}: rename one")
    for dim, values in coords.items():
        if sizes.get(dim) != len(values):
            raise StoreError(f"coords {dim!r} has {len(values)} values but dim {dim!r} has size {sizes.get(dim)}")
    return {
        "dataset": dataset,
        "key": key,
        "config": _json_values(config, "config"),
        "image_ids": [str(image_id) for image_id in image_ids],
        "splits": [str(split) for split in splits],
        "arrays": {name: spec.to_dict() for name, spec in arrays.items()},
        "coords": {dim: _json_values(list(values), f"coords {dim!r}") for dim, values in coords.items()},
    }


def _json_values(value: Any, what: str) -> Any:
    """The value as it reads back from JSON (tuples become lists), so cached and given compare equal."""
    return json.loads(canonical_config(value, what=what))


def _check_array_names(names: list[str]) -> None:
    for name in names:
        parts = name.split("/")
        reserved = parts[0] in (DONE_ARRAY, CHECKSUM_ARRAY) or name == "zarr.json"
        if reserved or any(not part or part.startswith(".") for part in parts):
            raise StoreError(f"array name {name!r} is reserved or not a plain path: use e.g. 'features/up_blocks.1'")
        prefixes = {"/".join(parts[:depth]) for depth in range(1, len(parts))}
        if prefixes & set(names):
            raise StoreError(f"array name {name!r} nests under another array's name: rename one")


def _check_same(entry: Entry, description: dict[str, Any], location: str) -> None:
    """ConfigMismatchError naming the first field where a cached entry differs from the one asked for."""
    cached = {
        "image_ids": entry.image_ids,
        "splits": entry.splits,
        "arrays": {name: spec.to_dict() for name, spec in entry.array_specs.items()},
        "coords": entry.coords,
    }
    for field, value in cached.items():
        given = description[field]
        if value == given:
            continue
        detail = _difference(value, given)
        raise ConfigMismatchError(
            f"entry {entry.dataset}/{entry.key} in {location} has different {field} ({detail}) for the same config: "
            f"extract into a new store, or delete {entry.group.path} from this one"
        )


def _difference(cached: Any, given: Any) -> str:
    """A short account of how two description fields differ."""
    if isinstance(cached, dict) and isinstance(given, dict):
        for name in sorted(set(cached) | set(given)):
            if cached.get(name) == given.get(name):
                continue
            if isinstance(cached.get(name), dict) and isinstance(given.get(name), dict):
                return f"{name} {_difference(cached[name], given[name])}"
            return f"{name}: cached {cached.get(name)}, given {given.get(name)}"
    if isinstance(cached, list) and isinstance(given, list):
        if len(cached) != len(given):
            return f"cached {len(cached)} values, given {len(given)}"
        index = next(index for index, (a, b) in enumerate(zip(cached, given)) if a != b)
        return f"at position {index}: cached {cached[index]!r}, given {given[index]!r}"
    return f"cached {cached!r}, given {given!r}"


def _entry_info(entry: Entry) -> EntryInfo:
    n_done = int(entry.done().sum())
    per_image = sum(spec.nbytes for spec in entry.array_specs.values())
    group = entry.group
    return EntryInfo(
        dataset=entry.dataset,
        key=entry.key,
        config=entry.config,
        n_done=n_done,
        n_labelled=int(entry.labelled().sum()),
        n_damaged=len(entry.missing_chunk_images()),
        n_total=len(entry.image_ids),
        bytes_stored=_stored_bytes(group),
        bytes_raw=n_done * per_image,
    )


def _stored_bytes(group: zarr.Group) -> int:
    """Bytes stored under `group`; on an fsspec store from one listing with sizes, not one request per object."""
    store, path = group.store_path.store, group.store_path.path
    if not isinstance(store, zarr.storage.FsspecStore):
        return sync(store.getsize_prefix(path))
    sizes = [info.get("size") for info in sync(store.fs._find(f"{store.path}/{path}", detail=True)).values()]
    if None in sizes:  # a file system whose listings carry no sizes: ask per object
        return sync(store.getsize_prefix(path))
    return sum(int(size) for size in sizes)
