"""Stream cached images out of store entries: one image's arrays per item, window batches for training.

By default nothing is kept between items: each read decodes that image's chunks from Zarr, so peak memory grows
with the batch, not with the number of images in the cache. A memory budget (`MemoryBudget`) keeps decoded images
in RAM up to its size instead: an epoch then reads each kept image once in the whole run, not once per epoch,
which on two cores is about half of a T&S-FreqAgg step. Features stay float16 from the store to the batch (half the
bytes to copy and hold); heads receive float32 through `batch_to_device`. Training batches are read in a
background thread (`prefetch`) while the current step runs: Blosc decoding releases the GIL.
"""

import logging
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dgss.aggregate.augment import apply_symmetry, random_symmetry
from dgss.aggregate.selection import select_features
from dgss.aggregate.spec import CacheSpec
from dgss.aggregate.windows import crop, sample_windows
from dgss.backbone.appearance import AppearanceTarget, match_appearance
from dgss.errors import StoreError
from dgss.extract.fov_border import extend_fov
from dgss.extract.settings import OutsideFov
from dgss.store import Entry
from dgss.store.schema import FEATURE_PREFIX

logger = logging.getLogger("dgss")


def split_indices(entry: Entry, preferred: str) -> tuple[str, list[int]]:
    """Indices of the done images with a vessel label of `preferred` split, or of all such images where the entry
    has no such split: what a head is trained or scored on (an unlabelled image has nothing to learn or score).

    Returns the split used ("all" for every image) and the indices. StoreError when no image of it is done, or
    none of those done has a label.
    """
    split = preferred if preferred in entry.splits else "all"
    indices = entry.indices(preferred) if split == preferred else list(range(len(entry.image_ids)))
    done, labelled = entry.done(), entry.labelled()
    ready = [index for index in indices if labelled[index]]
    if not ready and any(done[index] for index in indices):
        raise StoreError(f"{entry.dataset} (key {entry.key}) has no image with a vessel label in split '{split}' "
                         f"({int(done[indices].sum())} extracted, none labelled): add its labels and run "
                         f"`dgss extract --dataset {entry.dataset}` again, or train and score on another dataset")
    if not ready:
        raise StoreError(f"{entry.dataset} (key {entry.key}) has no extracted image in split '{split}' "
                         f"({len(indices)} image(s), none done): run `dgss extract --dataset {entry.dataset}` first")
    return split, ready


def warn_pending(entry: Entry, split: str, action: str) -> None:
    """Name a dataset whose split ("all": every image) is only partly extracted, or has extracted images without a
    vessel label, with the counts, before it is used without them."""
    indices = entry.indices(None if split == "all" else split)
    done = int(entry.done()[indices].sum())
    if done < len(indices):
        logger.warning("%s: %d of %d images of split '%s' are not extracted yet; %s the %d done (finish them with "
                       "`dgss extract --dataset %s`)", entry.dataset, len(indices) - done, len(indices), split, action,
                       done, entry.dataset)
    unlabelled = unlabelled_count(entry, split)
    if unlabelled:
        logger.warning("%s: %d of %d extracted images of split '%s' have no vessel label and are left out; %s the "
                       "%d labelled", entry.dataset, unlabelled, done, split, action, done - unlabelled)


def unlabelled_count(entry: Entry, split: str) -> int:
    """How many extracted images of `split` ("all": every image) have no vessel label (left out of training and
    scoring)."""
    indices = entry.indices(None if split == "all" else split)
    return int((entry.done()[indices] & ~entry.labelled()[indices]).sum())


def feature_names(entry: Entry) -> list[str]:
    """The entry's feature array names ("features/<block>"), in store order."""
    return [name for name in entry.array_specs if name.startswith(FEATURE_PREFIX)]


def head_image(image: np.ndarray, fov: np.ndarray, extraction_config: Mapping[str, Any]) -> torch.Tensor:
    """The heads' "image" input: the canvas image as the backbone saw it (matched to the config's appearance target
    inside the FOV, where the config has one; extended past the FOV where the config says so), as (rgb, y, x)
    float32 in [0, 1].

    A head that reads the image (the U-Net baseline, T&S-FreqAgg's refinement) then sees exactly the input the
    features were computed from, so a comparison between heads is not a comparison of preprocessing.

    Parameters
    ----------
    image : (y, x, rgb) uint8 canvas image as cached
    fov : (y, x) bool
    """
    appearance = extraction_config.get("appearance")
    if appearance is not None:
        image = match_appearance(image, fov, AppearanceTarget.from_dict(appearance))
    if extraction_config.get("outside_fov") == OutsideFov.extend:
        image = extend_fov(image, fov)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0)


class MemoryBudget:
    """Bytes of decoded images that may stay in RAM, shared by the `CachedImages` of one run (first come, first
    kept: the training images, read in the first epoch, before the validation images)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def take(self, size: int) -> bool:
        """Reserve `size` bytes if they fit in what is left; whether they did."""
        if size > self.left:
            return False
        self.left -= size
        return True


class CachedImages(Dataset):
    """(entry, image index) pairs served as dicts of tensors, read from the store on every access.

    Each item holds "features/<block>": (timestep, band, channel, y, x) float16 as cached; "image": (rgb, y, x) float32
    in [0, 1] (see `head_image`); "vessel": (y, x) int64; "fov": (y, x) bool (canvas size). All entries must share one key.
    With `features=False` (a head that reads only the image) the feature arrays are not read at all; with `spec`
    (a part of the cache, `dgss.aggregate.selection`) only its blocks are read and its timesteps kept. Items read
    are kept (and served again without a read) while `budget` has room for them; callers must not modify an item
    in place.
    """

    def __init__(self, items: Sequence[tuple[Entry, int]], *, features: bool = True,
                 budget: MemoryBudget | None = None, spec: CacheSpec | None = None):
        self.items = list(items)
        self.features = features
        self.spec = spec
        self.budget = budget or MemoryBudget(0)
        self._kept: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        if position in self._kept:
            return self._kept[position]
        item = self._read(position)
        if self.budget.take(sum(value.nbytes for value in item.values())):
            self._kept[position] = item
        return item

    def _read(self, position: int) -> dict[str, torch.Tensor]:
        entry, index = self.items[position]
        names = feature_names(entry) if self.features else []
        if self.spec is not None:
            wanted = {self.spec.feature_key(block) for block in self.spec.blocks}
            names = [name for name in names if name in wanted]
        item = {name: torch.from_numpy(entry.read(name, index)) for name in names}
        if self.spec is not None:
            item = select_features(item, entry.config["timesteps"], self.spec, timestep_dim=0)
        fov = entry.read("fov", index).astype(bool)
        item["image"] = head_image(entry.read("image", index), fov, entry.config)
        item["vessel"] = torch.from_numpy(entry.read("vessel", index).astype(np.int64))
        item["fov"] = torch.from_numpy(fov)
        return item


@dataclass(frozen=True)
class Step:
    """One training step: which images to read and the seed of the windows drawn from each."""

    positions: tuple[int, ...]
    window_seed: int


def epoch_steps(count: int, images_per_step: int, generator: torch.Generator) -> list[Step]:
    """Shuffle ``count`` images into steps of ``images_per_step`` (the last may be smaller), each with a seed.

    Everything random about an epoch's data is drawn here, from ``generator``, before any image is read: the
    batches do not depend on how or when they are read, so a resumed run sees the same ones.
    """
    order = torch.randperm(count, generator=generator).tolist()
    seeds = torch.randint(0, 2**31 - 1, (count,), generator=generator).tolist()
    return [Step(tuple(order[start:start + images_per_step]), seeds[start])
            for start in range(0, count, images_per_step)]


def window_batch(images: CachedImages, step: Step, spec: CacheSpec, side: int, windows_per_image: int, *,
                 flips: bool = False) -> dict[str, torch.Tensor]:
    """Read the step's images once each and stack ``windows_per_image`` random windows of each into one batch;
    with ``flips`` each window is flipped and rotated by a random symmetry of the square (`dgss.aggregate.augment`)."""
    rng = np.random.default_rng(step.window_seed)
    windows = []
    for position in step.positions:
        item = images[position]
        for window in sample_windows(item["fov"].numpy(), spec, side, windows_per_image, rng):
            # copies, not views: the decoded image (~100 MiB at 512 px) is freed before the next one is read
            cut = {name: value.clone() for name, value in crop(item, spec, window).items()}
            windows.append(apply_symmetry(cut, spec, random_symmetry(rng)) if flips else cut)
        del item
    return {name: torch.stack([window[name] for window in windows]) for name in windows[0]}


def prefetch(batches: Iterable[dict[str, torch.Tensor]], depth: int = 2) -> Iterator[dict[str, torch.Tensor]]:
    """Yield ``batches`` in order while a background thread reads up to ``depth`` ahead.

    An error in the reader is raised here, in the training loop; leaving the loop early stops the reader.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    finished = object()

    def read() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        slots.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(finished)
        except BaseException as error:  # handed to the consumer, which raises it
            slots.put(error)

    reader = threading.Thread(target=read, name="dgss-prefetch", daemon=True)
    reader.start()
    try:
        while (batch := slots.get()) is not finished:
            if isinstance(batch, BaseException):
                raise batch
            yield batch
    finally:
        stop.set()
        reader.join()
