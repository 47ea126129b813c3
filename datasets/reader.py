"""What every dataset reader yields and promises, whatever its files look like on disk.

Downstream code (extraction, evaluation) only ever sees a :class:`Sample` per image id, so a new dataset is a new
reader and nothing else changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from dgss.errors import DatasetError


@dataclass(frozen=True)
class Sample:
    """One image with its ground truth, at native resolution.

    Attributes
    ----------
    id : str
        Stable image id, unique within the dataset (e.g. ``"21_training"``, ``"im0001"``).
    image : np.ndarray
        ``(y, x, 3)`` uint8 RGB.
    vessel : np.ndarray
        ``(y, x)`` bool vessel ground truth (label > 0); all False when the image has no label.
    fov : np.ndarray
        ``(y, x)`` bool field of view, published by the dataset or derived from the image.
    split : str
        ``"training"``, ``"test"`` or ``"all"`` (no official split).
    labelled : bool
        Whether ``vessel`` is a label; an unlabelled image is extracted but never trained on or scored.
    """

    id: str
    image: np.ndarray
    vessel: np.ndarray
    fov: np.ndarray
    split: str
    labelled: bool = True


class DatasetReader(ABC):
    """A named dataset: ordered image ids per split, and one :class:`Sample` per id.

    Class attributes ``ground_truth`` and ``fov_source`` describe where labels and FOV masks come from, for the
    ``dgss datasets`` table.
    """

    name: str
    field_of_view_deg: float
    ground_truth: str = "published"
    fov_source: str = "published"

    @abstractmethod
    def splits(self) -> dict[str, list[str]]:
        """Ordered image ids per split; ``{"all": [...]}`` when the dataset has no official split."""

    @abstractmethod
    def read(self, image_id: str) -> Sample:
        """Read one image with its labels; DatasetError naming the file on any problem."""

    @abstractmethod
    def shape(self, image_id: str) -> tuple[int, int]:
        """Native ``(height, width)`` of an image, from its header where the format allows."""

    @abstractmethod
    def check(self) -> list[str]:
        """Read every file and return every problem found, one line each (empty when all is well)."""

    def has_label(self, image_id: str) -> bool:
        """Whether an image has a vessel label, known from the listing alone (every image, unless a reader says
        otherwise)."""
        return True

    def labels_note(self) -> str | None:
        """One line saying how many images have vessel labels when some lack one (None when all have one)."""
        ids = self.ids()
        labelled = sum(self.has_label(image_id) for image_id in ids)
        if labelled == len(ids):
            return None
        return (f"{self.name}: {labelled} of {len(ids)} images have vessel labels; the other {len(ids) - labelled} "
                "are extracted but neither trained on nor scored")

    def files_digest(self) -> str | None:
        """A digest of the dataset's files (names and sizes) where they can change under one name (`folder:`), so
        a cache of them can tell; None where the name stands for fixed content."""
        return None

    def ids(self, split: str | None = None) -> list[str]:
        """Image ids of one split, or of all splits in order when ``split`` is None."""
        splits = self.splits()
        if split is None:
            return [image_id for ids in splits.values() for image_id in ids]
        if split not in splits:
            raise DatasetError(f"{self.name} has no split {split!r}; its splits are {', '.join(splits)}")
        return list(splits[split])

    def split_of(self, image_id: str) -> str:
        """The split an image id belongs to."""
        for split, ids in self.splits().items():
            if image_id in ids:
                return split
        raise DatasetError(f"{self.name} has no image {image_id!r}; see `dgss datasets` for what it holds")
