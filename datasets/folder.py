"""``folder:PATH``: any dataset laid out as ``images/``, ``labels/`` and optional ``fov/``, matched by file stem.

This is how a user brings their own data: no code, just three folders. Without ``fov/`` the FOV is derived from
each image (:func:`dgss.datasets.fov.derive_fov`, default threshold). All images form one ``"all"`` split.

A folder is named by its resolved path (`folder_name`), so ``folder:mini`` typed in ``/data`` and
``folder:/data/mini`` are one dataset and two folders both called ``mini`` are two; `files_digest` (the files'
names and sizes) lets a cache of the folder notice that its files changed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from dgss.datasets.file_reader import FileDatasetReader
from dgss.datasets.layout import SplitLayout


FOLDER_PREFIX = "folder:"
_LAYOUT_FOLDERS = ("images", "labels", "fov")


def folder_name(name: str) -> str:
    """``folder:PATH`` with PATH resolved (``~`` expanded, symbolic links and ``..`` followed)."""
    return FOLDER_PREFIX + str(Path(name[len(FOLDER_PREFIX):]).expanduser().resolve())


def files_digest(folder: Path) -> str:
    """SHA-256 of the relative name and size of every file under the folder's images/, labels/ and fov/."""
    digest = hashlib.sha256()
    for sub in _LAYOUT_FOLDERS:
        for path in sorted((folder / sub).rglob("*")) if (folder / sub).is_dir() else []:
            if path.is_file():
                digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()


class FolderReader(FileDatasetReader):
    """Reads ``<folder>/images/<stem>.*`` with ``labels/<stem>.*`` and, when present, ``fov/<stem>.*``."""

    field_of_view_deg = 45.0
    ground_truth = "labels/"

    def __init__(self, folder: Path, name: str) -> None:
        super().__init__(folder, name)
        self.fov_source = "published" if (folder / "fov").is_dir() else "derived"

    def files_digest(self) -> str:
        return files_digest(self.folder)

    def layouts(self) -> list[SplitLayout]:
        fov = "fov" if self.fov_source == "published" else None
        return [SplitLayout(split="all", images="images", labels="labels", fov=fov)]
