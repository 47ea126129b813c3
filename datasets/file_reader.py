"""A reader for datasets stored as image files: one folder, a layout of sub-folders, nothing cached but the index.

Subclasses say where the files are (:meth:`FileDatasetReader.layouts`), the camera's field angle, and, when the
dataset publishes no FOV masks, the red threshold used to derive them (also used for an unlabelled image whose
mask is missing, see :mod:`dgss.datasets.layout`). A dataset labelled in part is read whole; one with no
label at all is refused, since nothing of it could be trained on or scored.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dgss.datasets.fov import DEFAULT_FOV_THRESHOLD, derive_fov
from dgss.datasets.image_io import read_image, read_mask, read_size
from dgss.datasets.layout import ImageFiles, SplitLayout, scan_layout
from dgss.datasets.reader import DatasetReader, Sample
from dgss.errors import DatasetError


class FileDatasetReader(DatasetReader):
    """Reads a dataset folder through its layout; pairing problems raise on first use and are all in ``check()``."""

    fov_threshold: int = DEFAULT_FOV_THRESHOLD

    def __init__(self, folder: Path, name: str | None = None) -> None:
        self.folder = folder
        if name is not None:
            self.name = name

    @abstractmethod
    def layouts(self) -> list[SplitLayout]:
        """Where each split's images, labels and FOV masks are, relative to :attr:`folder`."""

    @cached_property
    def _scan(self) -> tuple[dict[str, ImageFiles], list[str]]:
        """Index of the folder (listing only, no pixels), with every pairing problem found."""
        layouts = self.layouts()
        items, problems = scan_layout(self.folder, layouts)
        if not items and not problems:
            problems.append(f"{self.folder}: no images found for {self.name}")
        elif items and all(item.label is None for item in items):
            folders = ", ".join(dict.fromkeys(f"{layout.labels}/" for layout in layouts))
            problems.append(f"{self.folder}: none of its {len(items)} images has a vessel label (looked in {folders}); "
                            "add the labels, or segment unlabelled photos with `dgss predict`")
        return {item.id: item for item in items}, problems

    def layout_problems(self) -> list[str]:
        """Files without partners, missing folders, duplicate names: found by listing the folder, no pixels read."""
        return list(self._scan[1])

    def _files(self) -> dict[str, ImageFiles]:
        """The index, or DatasetError with the first problem (and how many more there are)."""
        files, problems = self._scan
        if problems:
            more = f" (+{len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise DatasetError(f"{self.name}: {problems[0]}{more}; run `dgss datasets --check` to list them all")
        return files

    def splits(self) -> dict[str, list[str]]:
        """Ordered image ids per split, in the order of :meth:`layouts`."""
        splits: dict[str, list[str]] = {}
        for item in self._files().values():
            splits.setdefault(item.split, []).append(item.id)
        return splits

    def _item(self, image_id: str) -> ImageFiles:
        files = self._files()
        if image_id not in files:
            raise DatasetError(f"{self.name} has no image {image_id!r} (in {self.folder}); see `dgss datasets`")
        return files[image_id]

    def has_label(self, image_id: str) -> bool:
        """Whether the image has a vessel label file, from the listing."""
        return self._item(image_id).label is not None

    def labels_note(self) -> str | None:
        """The base class's line, plus how many unlabelled images get a derived FOV where the layout has masks."""
        note = super().labels_note()
        derived = sum(item.fov is None for item in self._files().values()) if self.fov_source == "published" else 0
        if note is None or not derived:
            return note
        return f"{note} ({derived} of them have no FOV mask and get one derived from the image)"

    def read(self, image_id: str) -> Sample:
        """Read one image, its label and its FOV mask (or derive it); DatasetError names any bad file."""
        return self._read_files(self._item(image_id))

    def _read_files(self, item: ImageFiles) -> Sample:
        image = read_image(item.image)
        if item.label is None:
            vessel = np.zeros(image.shape[:2], dtype=bool)
        else:
            vessel = read_mask(item.label)
            _check_size(item.label, vessel, item.image, image)
        if item.fov is None:
            fov = derive_fov(image, self.fov_threshold)
        else:
            fov = read_mask(item.fov)
            _check_size(item.fov, fov, item.image, image)
        _check_not_black(item.image, image, fov)
        labelled = item.label is not None
        return Sample(id=item.id, image=image, vessel=vessel, fov=fov, split=item.split, labelled=labelled)

    def shape(self, image_id: str) -> tuple[int, int]:
        """Native ``(height, width)`` from the image header."""
        return read_size(self._item(image_id).image)

    def check(self) -> list[str]:
        """Pairing problems, then one line per file that cannot be read or does not match its image's size."""
        files, problems = self._scan
        problems = list(problems)
        for item in tqdm(files.values(), desc=f"checking {self.name}", unit="image", disable=None, leave=False):
            try:
                self._read_files(item)
            except DatasetError as error:
                problems.append(str(error))
        return problems


def _check_not_black(path: Path, image: np.ndarray, fov: np.ndarray) -> None:
    """An image with nothing inside its FOV would be cached as features of a blank picture, silently."""
    if not fov.any() or not image[fov].any():
        raise DatasetError(
            f"{path}: empty field of view: is the image black? (no pixel inside the FOV is above black); "
            "replace or remove the file (`dgss datasets --check` lists every such file)"
        )


def _check_size(path: Path, mask: np.ndarray, image_path: Path, image: np.ndarray) -> None:
    """A label or FOV mask must cover its image pixel for pixel."""
    if mask.shape != image.shape[:2]:
        raise DatasetError(
            f"{path}: size {mask.shape[1]}x{mask.shape[0]} differs from its image {image_path.name} "
            f"({image.shape[1]}x{image.shape[0]}, width x height)"
        )
