"""Datasets by name: which reader, and where its folder is.

A dataset ``NAME`` lives at ``<data root>/NAME/``. The data root is ``--data-root`` (the ``data_root`` argument),
else the ``DGSS_DATA_ROOT`` environment variable (read on each call, never at import), else ``./data``. An archive
unpacked with its own top folder (``DR-HAGIS/DRHAGIS/Fundus_Images``) is found too: when a dataset folder holds
nothing but one folder named like the dataset, that folder is used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dgss.datasets.folder import FOLDER_PREFIX, FolderReader, folder_name
from dgss.datasets.photometric import VIEW_NAME, VIEW_SEPARATOR, PhotometricView
from dgss.datasets.published import PUBLISHED_READERS
from dgss.datasets.reader import DatasetReader
from dgss.datasets.synthetic import SYNTHETIC_DOMAINS
from dgss.datasets.synthetic_reader import SyntheticReader
from dgss.errors import DatasetError

DATA_ROOT_ENV = "DGSS_DATA_ROOT"
_SYNTHETIC_NAME = re.compile(r"SYNTH-(?P<domain>[A-Z])(?:-(?P<count>\d+)x(?P<size>\d+))?")
_ARCHIVE_LEFTOVERS = frozenset({"__MACOSX"})


def dataset_names() -> list[str]:
    """Every registered name: the published datasets, then SYNTH-A/B/C (``folder:PATH`` and variants not listed)."""
    return [*PUBLISHED_READERS, *(f"SYNTH-{domain}" for domain in SYNTHETIC_DOMAINS)]


def resolve_data_root(data_root: str | Path | None) -> Path:
    """The folder holding one sub-folder per dataset: the argument, else ``$DGSS_DATA_ROOT``, else ``./data``."""
    if data_root is not None:
        return Path(data_root).expanduser()
    from_env = os.environ.get(DATA_ROOT_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return Path("data")


def get_dataset(name: str, data_root: str | Path | None = None) -> DatasetReader:
    """The reader for a dataset name.

    Parameters
    ----------
    name : str
        A name from :func:`dataset_names`, ``SYNTH-<domain>-<count>x<size>``, or ``folder:PATH`` (a folder with
        ``images/``, ``labels/`` and optional ``fov/``; PATH is used as given, not under the data root). Any of
        them followed by ``+photoK`` is photometric view K of its training images (`photometric.PhotometricView`).
    data_root : str, Path or None
        See :func:`resolve_data_root`; synthetic and ``folder:`` datasets ignore it.

    Raises
    ------
    DatasetError
        Unknown name (lists the known ones), or dataset folder missing (says where it looked and how to set the
        root).
    """
    view = VIEW_NAME.fullmatch(name)
    if view:
        return PhotometricView(get_dataset(view["base"], data_root), int(view["view"]))
    if name.startswith(FOLDER_PREFIX):
        folder = Path(name[len(FOLDER_PREFIX) :]).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"{name}: no folder {folder.resolve()}; give a folder with images/, labels/ (and fov/)")
        return FolderReader(folder, folder_name(name))
    synthetic = _SYNTHETIC_NAME.fullmatch(name)
    if synthetic and synthetic["domain"] in SYNTHETIC_DOMAINS:
        if synthetic["count"] is None:
            return SyntheticReader(name, synthetic["domain"])
        return SyntheticReader(name, synthetic["domain"], int(synthetic["count"]), int(synthetic["size"]))
    if name not in PUBLISHED_READERS:
        known = ", ".join(dataset_names())
        raise DatasetError(
            f"unknown dataset {name!r}; known: {known}, SYNTH-<A|B|C>-<count>x<size>, folder:PATH and NAME+photoK"
        )
    root = resolve_data_root(data_root)
    folder = root / name
    if not folder.is_dir():
        raise DatasetError(
            f"dataset {name} not found: no folder {folder.resolve()}; unpack it there, or point --data-root "
            f"(or {DATA_ROOT_ENV}) at the folder that holds {name}/"
        )
    return PUBLISHED_READERS[name](_unwrap(folder, name))


def canonical_name(name: str) -> str:
    """The name a dataset is cached under: ``folder:PATH`` with PATH resolved (`folder_name`), views of it too;
    every other name as given. Commands that look a dataset up in a store go through it."""
    view = VIEW_NAME.fullmatch(name)
    if view:
        return f"{canonical_name(view['base'])}{VIEW_SEPARATOR}{view['view']}"
    return folder_name(name) if name.startswith(FOLDER_PREFIX) else name


def source_ids(reader: DatasetReader) -> list[str]:
    """Images to train on: the ``"training"`` split if the dataset has one, else all of them."""
    splits = reader.splits()
    return list(splits["training"]) if "training" in splits else reader.ids()


def target_ids(reader: DatasetReader) -> list[str]:
    """Images to evaluate on: the ``"test"`` split if the dataset has one, else all of them."""
    splits = reader.splits()
    return list(splits["test"]) if "test" in splits else reader.ids()


def _unwrap(folder: Path, name: str) -> Path:
    """Look through an archive's own top folder (the only entry, named like the dataset: DRHAGIS, LES-AV, ...)."""
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    entries = [entry for entry in entries if entry.name not in _ARCHIVE_LEFTOVERS]
    if len(entries) == 1 and entries[0].is_dir() and _plain(entries[0].name).startswith(_plain(name)):
        return _unwrap(entries[0], name)
    return folder


def _plain(text: str) -> str:
    """Letters and digits only, lower case, to compare folder names (``DR-HAGIS`` ~ ``DRHAGIS``)."""
    return re.sub(r"[^a-z0-9]", "", text.lower())
