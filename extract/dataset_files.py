"""A cached `folder:` dataset remembers its files, so a cache never stands for a folder whose files changed.

The entry records the digest of the folder's file names and sizes (`DatasetReader.files_digest`) when it is
created. Extracting into it again, training on it or scoring it while the folder holds other files is refused by
name (its labels in the cache would not be the folder's); `dgss extract --overwrite` computes it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dgss.datasets import get_dataset
from dgss.datasets.folder import FOLDER_PREFIX
from dgss.datasets.photometric import viewed_dataset
from dgss.errors import DatasetError

if TYPE_CHECKING:
    from dgss.datasets.reader import DatasetReader
    from dgss.store import Entry

FILES_DIGEST_ATTR = "files_digest"


def files_attrs(reader: DatasetReader) -> dict[str, str]:
    """The entry attribute that records the reader's files (none for a dataset whose name fixes its content)."""
    digest = reader.files_digest()
    return {} if digest is None else {FILES_DIGEST_ATTR: digest}


def changed_files(entry: Entry, digest: str | None) -> bool:
    """Whether the entry was extracted from other files than those whose digest is `digest` (False where either
    side recorded none: a published dataset, or an entry from before entries recorded it)."""
    recorded = entry.attrs.get(FILES_DIGEST_ATTR)
    return digest is not None and recorded is not None and recorded != digest


def changed_files_error(entry: Entry, store: str) -> DatasetError:
    return DatasetError(
        f"{entry.dataset}: its files changed since it was extracted into {store} (file names or sizes differ), so "
        f"the cached images and labels are not the folder's: extract it again with `dgss extract --dataset "
        f"{entry.dataset} --store {store} --overwrite` (and the options it was extracted with)")


def check_unchanged(entry: Entry, store: str) -> None:
    """Refuse a `folder:` entry whose folder is still there with other files; a folder no longer there is fine
    (the cache holds all a head needs)."""
    if not viewed_dataset(entry.dataset).startswith(FOLDER_PREFIX):
        return
    try:
        digest = get_dataset(entry.dataset).files_digest()
    except DatasetError:  # the folder is gone (another machine): nothing to compare
        return
    if changed_files(entry, digest):
        raise changed_files_error(entry, store)
