"""Photometric views of a dataset's training images: extra sources that look as if another camera had taken them.

``DRIVE+photo1`` is DRIVE's training split with every image re-rendered by a random photometric change drawn
from (view, image id): gamma, contrast about the FOV mean, a colour cast, blur and sensor noise, all inside the FOV,
labels and FOV unchanged. Extracted like any dataset (``dgss extract --dataset DRIVE+photo1``) it becomes an extra
cached source for ``dgss fit-head --source DRIVE,DRIVE+photo1``, a domain-generalization augmentation that the
cache keeps. Only the training split has views: a view of a test image would leak the target into the sources.

Extraction matches each image's per-channel mean and spread inside the FOV to the backbone's appearance target, so
what survives of a view there is its non-linear part (gamma), its blur and its noise; the colour cast and the
linear contrast reach the backbone only through clipping.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dgss.datasets.reader import DatasetReader, Sample
from dgss.errors import DatasetError

VIEW_SEPARATOR = "+photo"
VIEW_NAME = re.compile(rf"(?P<base>.+){re.escape(VIEW_SEPARATOR)}(?P<view>\d+)")


def view_names(name: str, views: int) -> list[str]:
    """The names of `name`'s photometric views 1..`views` (`DRIVE+photo1`, ...): what `--views K` adds."""
    return [f"{name}{VIEW_SEPARATOR}{view}" for view in range(1, views + 1)]


def viewed_dataset(name: str) -> str:
    """The dataset whose images `name` shows: a view's base (views of views too), else `name` itself. A view's
    images are its base's, so a run trained on a view has seen those images of the base."""
    view = VIEW_NAME.fullmatch(name)
    return viewed_dataset(view["base"]) if view else name


@dataclass(frozen=True)
class PhotometricChange:
    """One image's draw: each field is the strength of one change (identity: 1, 1, (1, 1, 1), 0, 0)."""

    gamma: float
    contrast: float
    colour: tuple[float, float, float]
    blur_sigma: float  # pixels at the image's native size
    noise_sd: float  # in 0..255 units

    @classmethod
    def draw(cls, rng: np.random.Generator) -> PhotometricChange:
        """Ranges wide enough to span the cameras of the public datasets (dim and bright, soft and sharp)."""
        return cls(
            gamma=float(np.exp(rng.uniform(np.log(0.6), np.log(1.7)))),
            contrast=float(rng.uniform(0.6, 1.4)),
            colour=tuple(float(gain) for gain in rng.uniform(0.8, 1.2, size=3)),
            blur_sigma=float(rng.uniform(0.0, 1.5)),
            noise_sd=float(rng.uniform(0.0, 6.0)),
        )

    def apply(self, image: np.ndarray, fov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The changed (y, x, 3) uint8 image; pixels outside the FOV stay as they were."""
        pixels = image.astype(np.float32) / 255.0
        pixels = pixels ** self.gamma
        mean = pixels[fov].mean(axis=0)
        pixels = (pixels - mean) * self.contrast + mean
        pixels = pixels * np.asarray(self.colour, np.float32)
        if self.blur_sigma > 0:
            pixels = ndimage.gaussian_filter(pixels, sigma=(self.blur_sigma, self.blur_sigma, 0))
        pixels = pixels * 255.0 + rng.normal(0.0, self.noise_sd, size=pixels.shape)
        changed = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        return np.where(fov[..., None], changed, image)


class PhotometricView(DatasetReader):
    """View `view` (1, 2, ...) of `base`'s training images; reproducible: the same view of an image is the same
    picture on every read and machine."""

    def __init__(self, base: DatasetReader, view: int) -> None:
        if view < 1:
            raise DatasetError(f"{base.name}{VIEW_SEPARATOR}{view}: views are numbered from 1, e.g. "
                               f"{base.name}{VIEW_SEPARATOR}1")
        self.base = base
        self.view = view
        self.name = f"{base.name}{VIEW_SEPARATOR}{view}"
        self.field_of_view_deg = base.field_of_view_deg
        self.ground_truth = base.ground_truth
        self.fov_source = base.fov_source

    def files_digest(self) -> str | None:
        return self.base.files_digest()

    def splits(self) -> dict[str, list[str]]:
        splits = self.base.splits()
        return {"training": list(splits["training"] if "training" in splits else self.base.ids())}

    def _rng(self, image_id: str) -> np.random.Generator:
        digest = hashlib.sha256(f"{self.view}\t{image_id}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def change(self, image_id: str) -> PhotometricChange:
        """The change this view makes to one image."""
        return PhotometricChange.draw(self._rng(image_id))

    def read(self, image_id: str) -> Sample:
        if image_id not in self.splits()["training"]:
            raise DatasetError(f"{self.name} has no image {image_id!r}: a view holds {self.base.name}'s training "
                               "images only (a view of a test image would put the target among the sources)")
        sample = self.base.read(image_id)
        rng = self._rng(image_id)
        image = PhotometricChange.draw(rng).apply(sample.image, sample.fov, rng)
        return Sample(id=sample.id, image=image, vessel=sample.vessel, fov=sample.fov, split="training",
                      labelled=sample.labelled)

    def shape(self, image_id: str) -> tuple[int, int]:
        return self.base.shape(image_id)

    def check(self) -> list[str]:
        return self.base.check()

    def has_label(self, image_id: str) -> bool:
        return self.base.has_label(image_id)
