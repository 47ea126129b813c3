"""The images a backbone trains on: the pool of unlabelled photos, each step's batch, and real crops to compare with.

Every random draw of step `s` comes from generators seeded by `(seed, s)`, so a resumed run replays the same data
as one that never stopped.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dgss.backbone.appearance import AppearanceMeter, AppearanceTarget
from dgss.datasets import DatasetReader, derive_fov, get_dataset, read_image, source_ids
from dgss.datasets.image_io import IMAGE_SUFFIXES, is_image_file
from dgss.datasets.photometric import PhotometricChange
from dgss.errors import DatasetError
from dgss.pretrain.presets import BackboneTrainingConfig, crop_photometric, crop_zoom

# Seeds the draw of the real crops shown beside the samples: one fixed set per run, apart from every step's draws.
_REAL_CROPS_STREAM = 2**31 - 1


class ImagePool:
    """The training images of all sources, decoded on first use and cached as FOV squares of `size` pixels.

    A source is a dataset name (its source split; labels are never read) or a flat folder of photos (FOV derived
    from the image). The cache holds `size * size * 3` bytes per image (2.2 GB for the 2,755 images of the fundus
    pool at 512 px, the shipped recipe's image size).
    """

    def __init__(self, sources: Sequence[str], data_root: str | Path | None, size: int) -> None:
        self.size = size
        self.counts: dict[str, int] = {}
        self.fingerprints: dict[str, str] = {}  # what each source holds, wherever it lives (see _source_loaders)
        self._loaders: list[functools.partial[tuple[np.ndarray, np.ndarray]]] = []
        for source in sources:
            loaders, fingerprint = _source_loaders(source, data_root)
            self.counts[source] = len(loaders)
            self.fingerprints[source] = fingerprint
            self._loaders.extend(loaders)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._loaders)

    def square(self, index: int) -> np.ndarray:
        """Image `index` FOV-cropped, padded to a square and resized: (size, size, 3) uint8."""
        if index not in self._cache:
            image, fov = self._loaders[index]()
            self._cache[index] = _fov_square(image, fov, self.size)
        return self._cache[index]

    def appearance_target(self) -> AppearanceTarget:
        """FOV colour statistics of every image of the pool (each square kept for training).

        Computed once before step 0 and kept in the checkpoints: counting only the images a process happened to
        decode would give a resumed run other statistics, and so its backbone another cache key.
        """
        meter = AppearanceMeter()
        for index, load in enumerate(self._loaders):
            image, fov = load()
            meter.add(image, fov)
            self._cache.setdefault(index, _fov_square(image, fov, self.size))
        return meter.target()


def _source_loaders(source: str, data_root: str | Path | None) -> tuple[list[functools.partial], str]:
    """One zero-argument loader per image of `source` (returning image (y,x,3) uint8, fov (y,x) bool), and the
    source's fingerprint: a hash of its file names and sizes (folder) or image ids (dataset), not of its path, so
    that a run folder moved to another machine recognises the same pool in another place."""
    folder = Path(source)
    if folder.is_dir():
        files = sorted(path for path in folder.iterdir() if is_image_file(path))
        if not files:
            raise DatasetError(
                f"image folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "point --source at a flat folder of fundus photos"
            )
        listing = [f"{path.name}\t{path.stat().st_size}" for path in files]
        return [functools.partial(_load_file, path) for path in files], _digest(listing)
    if os.sep in source and not source.startswith("folder:"):  # a path, not a dataset name
        raise DatasetError(f"image folder {source} does not exist; pass an existing folder or a dataset name")
    reader = get_dataset(source, data_root)
    ids = source_ids(reader)
    if not ids:
        raise DatasetError(f"dataset {source} has no images to train on; check its folder under the data root")
    return [functools.partial(_load_sample, reader, image_id) for image_id in ids], _digest([source, *ids])


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _load_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = read_image(path)
    return image, derive_fov(image)


def _load_sample(reader: DatasetReader, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    sample = reader.read(image_id)
    return sample.image, sample.fov


def _fov_square(image: np.ndarray, fov: np.ndarray, size: int) -> np.ndarray:
    """Crop to the FOV's bounding box, pad to a centred square with black, resize to (size, size, 3) uint8.

    This is the framing extraction uses (FOV crop, aspect kept, padded), so the backbone trains on what it will see.
    An empty FOV (a photo without a dark surround that the threshold rejects) keeps the whole frame.
    """
    if fov.any():
        rows, cols = np.flatnonzero(fov.any(axis=1)), np.flatnonzero(fov.any(axis=0))
        image = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = image.shape[:2]
    side = max(height, width)
    canvas = np.zeros((side, side, 3), np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = image
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.LANCZOS))


def step_rng(seed: int, step: int, stream: int) -> np.random.Generator:
    """The generator of one kind of draw (`stream`) at training step `step`."""
    return np.random.default_rng([seed, step, stream])


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, count]).permutation(count)


def _crops(pool: ImagePool, indices: Sequence[int], rng: np.random.Generator, resolution: int,
           zoom: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Random `resolution` px crops of the given images, each flipped left-right with probability 1/2.

    With a zoom range other than (1, 1), each crop is first cut `resolution / zoom` px wide, at a zoom drawn
    log-uniformly from the range, then resized to `resolution` (a zoom above 1 shows vessels wider).
    """
    count = len(indices)
    if zoom == (1.0, 1.0):
        sides = np.full(count, resolution)
        offsets = rng.integers(0, pool.size - resolution + 1, size=(count, 2))
    else:
        zooms = np.exp(rng.uniform(np.log(zoom[0]), np.log(zoom[1]), size=count))
        sides = np.rint(resolution / zooms).astype(int)  # at most pool.size: the config checks the low zoom
        offsets = rng.integers(0, pool.size - sides[:, None] + 1, size=(count, 2))
    flips = rng.random(count) < 0.5
    crops = []
    for index, side, (top, left), flip in zip(indices, sides, offsets, flips):
        crop = pool.square(index)[top : top + side, left : left + side]
        if side != resolution:
            crop = np.asarray(Image.fromarray(crop).resize((resolution, resolution), Image.Resampling.LANCZOS))
        crops.append(crop[:, ::-1] if flip else crop)
    return np.ascontiguousarray(np.stack(crops))


def _rerendered(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each crop re-rendered by its own photometric change inside its FOV (derived from the crop; a crop without one,
    all surround, stays as it is)."""
    changed = crops.copy()
    for index, crop in enumerate(crops):
        fov = derive_fov(crop)
        change = PhotometricChange.draw(rng)
        if fov.any():
            changed[index] = change.apply(crop, fov, rng)
    return changed


def training_batch(pool: ImagePool, config: BackboneTrainingConfig, step: int) -> torch.Tensor:
    """The images of training step `step`: a pure function of (seed, step), so resuming replays the same data.

    Images are drawn without replacement in per-epoch permutations, then randomly cropped to the resolution
    from FOV squares of `image_size` (the scale features are later extracted at) and flipped left-right; from
    `augment_from_step` on, zoomed (`zoom_range`) and re-rendered (`photometric`) where the config says so.

    Returns
    -------
    torch.Tensor
        (batch, rgb, resolution, resolution) float32 in [-1, 1].
    """
    count = len(pool)
    positions = step * config.batch_size + np.arange(config.batch_size)
    indices = [int(_epoch_order(config.seed, int(p // count), count)[p % count]) for p in positions]
    crops = _crops(pool, indices, step_rng(config.seed, step, 0), config.resolution, crop_zoom(config, step))
    if crop_photometric(config, step):
        crops = _rerendered(crops, step_rng(config.seed, step, 2))
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def real_crops(pool: ImagePool, config: BackboneTrainingConfig, count: int) -> np.ndarray:
    """`count` crops drawn as training draws them (same size and flips, at the extraction scale: no zoom), the same
    for every checkpoint of a run: what the samples should look like.

    Returns
    -------
    np.ndarray
        (crop, y, x, rgb) uint8.
    """
    rng = np.random.default_rng([config.seed, _REAL_CROPS_STREAM])
    indices = rng.choice(len(pool), size=count, replace=count > len(pool))
    return _crops(pool, [int(i) for i in indices], rng, config.resolution)
