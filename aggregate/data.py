"""Stream cached images out of store entries as a torch Dataset, one image's arrays per item.

Nothing is kept between items: each `__getitem__` reads that image's chunks from Zarr, so peak memory grows
with the batch size, not with the number of images in the cache.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from dgss.store import Entry
from dgss.store.errors import StoreError

FEATURE_PREFIX = "features/"


def split_indices(entry: Entry, preferred: str) -> tuple[str, list[int]]:
    """Indices of the done images of `preferred` split, or of all done images where the entry has no such split.

    Returns the split used ("all" for every image) and the indices. StoreError when no image of it is done.
    """
    split = preferred if preferred in entry.splits else "all"
    indices = entry.indices(preferred) if split == preferred else list(range(len(entry.image_ids)))
    done = entry.done()
    ready = [index for index in indices if done[index]]
    if not ready:
        raise StoreError(f"{entry.dataset} (key {entry.key}) has no extracted image in split '{split}' "
                         f"({len(indices)} image(s), none done): run `dgss extract --dataset {entry.dataset}` first")
    return split, ready


def feature_names(entry: Entry) -> list[str]:
    """The entry's feature array names ("features/<block>"), in store order."""
    return [name for name in entry.array_specs if name.startswith(FEATURE_PREFIX)]


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(y, x, rgb) uint8 canvas image -> (rgb, y, x) float32 in [0, 1], the heads' "image" input."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0)


class CachedImages(Dataset):
    """(entry, image index) pairs served as dicts of tensors, read from the store on every access.

    Each item holds "features/<block>": (timestep, band, channel, y, x) float32; "image": (rgb, y, x) float32
    in [0, 1]; "vessel": (y, x) int64; "fov": (y, x) bool (canvas size). All entries must share one key.
    With `features=False` (a head that reads only the image) the feature arrays are not read at all.
    """

    def __init__(self, items: Sequence[tuple[Entry, int]], *, features: bool = True):
        self.items = list(items)
        self.features = features

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        entry, index = self.items[position]
        names = feature_names(entry) if self.features else []
        item = {name: torch.from_numpy(entry.read(name, index).astype(np.float32)) for name in names}
        image = entry.read("image", index)
        item["image"] = image_to_tensor(image)
        item["vessel"] = torch.from_numpy(entry.read("vessel", index).astype(np.int64))
        item["fov"] = torch.from_numpy(entry.read("fov", index).astype(bool))
        return item
