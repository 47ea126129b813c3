"""``folder:PATH``: any dataset laid out as ``images/``, ``labels/`` and optional ``fov/``, matched by file stem.

This is how a user brings their own data: no code, just three folders. Without ``fov/`` the FOV is derived from
each image (:func:`dgss.datasets.fov.derive_fov`, default threshold). All images form one ``"all"`` split.
"""

from __future__ import annotations

from pathlib import Path

from dgss.datasets.file_reader import FileDatasetReader
from dgss.datasets.layout import SplitLayout


class FolderReader(FileDatasetReader):
    """Reads ``<folder>/images/<stem>.*`` with ``labels/<stem>.*`` and, when present, ``fov/<stem>.*``."""

    field_of_view_deg = 45.0
    ground_truth = "labels/"

    def __init__(self, folder: Path, name: str) -> None:
        super().__init__(folder, name)
        self.fov_source = "published" if (folder / "fov").is_dir() else "derived"

    def layouts(self) -> list[SplitLayout]:
        fov = "fov" if self.fov_source == "published" else None
        return [SplitLayout(split="all", images="images", labels="labels", fov=fov)]
