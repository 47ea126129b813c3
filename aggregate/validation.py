"""Model selection without target labels: a validation part of the source images picks each head's epoch and
decision threshold.

A head's probabilities are not calibrated at 0.5, least of all on a camera it never saw; the labels of the target
must not be used to fix that, but a held-out part of the sources may. Each source dataset gives up
`fraction` of its training images (at least one where it has two or more), the same ones for every member and
seed of a run; every `every` epochs (and after the last) the head is scored on them at canvas resolution inside
the FOV, and the epoch whose best-threshold Dice is highest is kept, with that threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dgss.aggregate.data import CachedImages
from dgss.aggregate.metrics import MetricAccumulator
from dgss.aggregate.run import DEFAULT_TILE, DEFAULT_TILE_CONTEXT
from dgss.aggregate.spec import CacheSpec
from dgss.aggregate.windows import tiled_logits
from dgss.datasets.photometric import viewed_dataset
from dgss.store import Entry

VALIDATION_BINS = 1000
"""Threshold resolution of the validation histogram (0.001)."""


@dataclass(frozen=True)
class ValidationScore:
    """One validation pass: the epoch it followed, the best-threshold Dice, that threshold, and the AUC-ROC."""

    epoch: int
    dice: float
    threshold: float
    auc_roc: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hold_out(dataset: str, indices: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split one source's image indices into (training, validation), by a seeded draw from `fraction` that depends
    on the dataset's name.

    At least one image is held out when `fraction` > 0 and the source has two or more; none when it has one.
    """
    indices = list(indices)
    count = min(len(indices) - 1, max(1, round(fraction * len(indices)))) if fraction > 0 else 0
    if count <= 0:
        return indices, []
    rng = np.random.default_rng([seed, _stable_hash(dataset)])
    held = set(rng.choice(indices, size=count, replace=False).tolist())
    return [i for i in indices if i not in held], [i for i in indices if i in held]


def held_out_ids(entries: Sequence[Entry], indices: Mapping[str, Sequence[int]], fraction: float,
                 seed: int) -> dict[str, set[str]]:
    """The validation image ids of every source, drawn once per base dataset: a photometric view (DRIVE+photo1)
    holds out exactly its base's images, so no copy of a validation image is trained on and no copy of a training
    image chooses the epoch or threshold.

    `indices` maps each entry's dataset to its usable image indices. A base that is not itself a source is drawn
    over its first view's images, under the base's name.
    """
    drawn: dict[str, set[str]] = {}
    bases_first = sorted(entries, key=lambda entry: viewed_dataset(entry.dataset) != entry.dataset)
    for entry in bases_first:
        base = viewed_dataset(entry.dataset)
        if base not in drawn:
            _, validation = hold_out(base, indices[entry.dataset], fraction, seed)
            drawn[base] = {entry.image_ids[index] for index in validation}
    return {entry.dataset: drawn[viewed_dataset(entry.dataset)] for entry in entries}


def _stable_hash(text: str) -> int:
    """A per-dataset number that does not change between processes (Python's hash() does)."""
    return int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little")


@torch.no_grad()
def score_validation(head: nn.Module, images: CachedImages, spec: CacheSpec, epoch: int) -> ValidationScore:
    """Score `head` on every validation image (whole canvas, in tiles, inside the canvas FOV)."""
    device = next(head.parameters()).device
    was_training = head.training
    head.eval()
    pooled = MetricAccumulator(bins=VALIDATION_BINS)
    for position in range(len(images)):
        item = images[position]
        batch = {name: value[None].to(device) for name, value in item.items()}
        logits = tiled_logits(head, batch, spec, side=DEFAULT_TILE, context=DEFAULT_TILE_CONTEXT)
        prob = torch.softmax(logits.float(), dim=1)[0, 1].cpu().numpy()
        pooled.update(prob, item["vessel"].numpy().astype(bool), item["fov"].numpy())
    head.train(was_training)
    threshold, dice = pooled.best_dice_threshold()
    return ValidationScore(epoch=epoch, dice=dice, threshold=threshold, auc_roc=pooled.compute()["auc_roc"])
