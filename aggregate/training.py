"""Train an ensemble of heads on cached features of one or more source datasets and save it as a run.

Training reads only the Zarr cache (no UNet, no image decoding), and by default not whole canvases but random
windows of them (`window`, canvas pixels; `windows_per_image` per image read): a step costs the same whatever the
canvas, and what a head has to learn about vessels is local. The loss is the release's 2-class cross-entropy plus
an optional soft-Dice term; Adam; each ensemble member is an independently seeded head (seed + member). A
checkpoint is written after every epoch, so a stopped run continues exactly with `resume=True`.
"""

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dgss.aggregate.checkpoint import Checkpoint, load_checkpoint, remove_checkpoint, save_checkpoint
from dgss.aggregate.data import CachedImages, epoch_steps, prefetch, split_indices, warn_pending, window_batch
from dgss.aggregate.heads import build_head, head_uses_features
from dgss.aggregate.run import (RunRecord, batch_to_device, head_file_name, load_head_weights, prepare_out_dir,
                                write_head, write_run)
from dgss.aggregate.spec import CacheSpec
from dgss.aggregate.windows import window_side
from dgss.store import Entry, FeatureStore
from dgss.store.errors import DgssError, StoreError

SOURCE_SPLIT = "training"
logger = logging.getLogger("dgss")


@dataclass(frozen=True, kw_only=True)
class HeadTrainingConfig:
    """Hyperparameters of one fit-head run.

    `batch_size` images are read per step and `windows_per_image` random windows of `window` canvas pixels are
    cut from each (`window=None`: whole canvases, one per image, as the release trains). Optimiser settings are
    the release's; `ensemble` is 1 here (release: 10).
    """

    head: str = "tsfreqagg"
    head_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 40
    batch_size: int = 2
    window: int | None = 128
    windows_per_image: int = 2
    lr: float = 2e-3
    seed: int = 0
    ensemble: int = 1
    dice_weight: float = 0.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "ensemble", "windows_per_image"):
            if getattr(self, name) < 1:
                raise DgssError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.window is not None and self.window < 1:
            raise DgssError(f"window must be at least 1 canvas pixel (or None for whole canvases), got {self.window}")
        if not self.lr > 0 or not self.dice_weight >= 0:  # also refuses NaN
            raise DgssError(f"lr must be > 0 and dice_weight >= 0, got lr={self.lr}, dice_weight={self.dice_weight}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadTrainingConfig":
        """Rebuild from `to_dict()` output; DgssError naming any unknown field."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise DgssError(f"unknown head training field(s): {', '.join(unknown)}")
        return cls(**data)


def fit_head(store_path: str | Path, sources: Sequence[str], out_dir: str | Path, config: HeadTrainingConfig,
             key: str | None = None, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train `config.ensemble` heads on the sources' cached features; write the run folder; return it.

    Each source contributes its done images of the "training" split, or all of its done images where it has no
    such split (images not extracted yet are named in a warning). All sources must be cached under one
    extraction key (`key`, or each dataset's only key). An `out_dir` that holds a run is refused unless `resume`
    (continue a stopped run from its last epoch; a finished one is kept) or `overwrite`.
    """
    out_dir = Path(out_dir)
    store = FeatureStore(store_path, create=False)
    entries = resolve_sources(store, sources, key)
    if prepare_out_dir(out_dir, resume=resume, overwrite=overwrite):
        logger.warning("%s is a finished run; nothing to resume", out_dir)
        return out_dir
    items, used = [], {}
    for entry in entries:
        split, indices = split_indices(entry, SOURCE_SPLIT)
        warn_pending(entry, split, "training on")
        items += [(entry, index) for index in indices]
        used[entry.dataset] = [entry.image_ids[index] for index in indices]
    first = entries[0]
    spec = CacheSpec.from_entry_attrs(first.config, first.attrs)
    identity = {"training": config.to_dict(), "key": first.key, "sources": used}
    out_dir.mkdir(parents=True, exist_ok=True)
    images = CachedImages(items, features=head_uses_features(config.head))
    heads, losses = train_heads(images, spec, config, out_dir, identity)
    resolved = dataclasses.replace(config, head_params=heads[0].config.to_dict())
    record = RunRecord(
        training=resolved.to_dict(), key=first.key, store=str(Path(store_path).resolve()), sources=used,
        extraction_config=first.config, spec=spec.to_dict(),
        head_files=tuple(head_file_name(member) for member in range(config.ensemble)),
    )
    write_run(out_dir, record, losses)
    remove_checkpoint(out_dir)
    return out_dir


def resolve_sources(store: FeatureStore, sources: Sequence[str], key: str | None) -> list[Entry]:
    """The sources' entries, all under one key; StoreError listing the keys when they differ."""
    if not sources:
        raise StoreError("no source dataset given: name one or more with --source, e.g. --source DRIVE,STARE")
    entries = [store.entry(source, key) for source in dict.fromkeys(sources)]
    keys = {entry.key for entry in entries}
    if len(keys) > 1:
        found = ", ".join(f"{entry.dataset}: {entry.key}" for entry in entries)
        raise StoreError(f"sources are cached under different extraction keys ({found}): "
                         "train on sources that share one key, or choose one with --key")
    return entries


def train_heads(images: CachedImages, spec: CacheSpec, config: HeadTrainingConfig, out_dir: Path,
                identity: dict[str, Any]) -> tuple[list[nn.Module], list[list[float]]]:
    """Train the ensemble, from the checkpoint in `out_dir` where there is one; return the heads (eval mode) and
    every member's per-epoch mean loss. Each finished member's head file is written as soon as it is done."""
    device = torch.device(config.device)
    checkpoint = load_checkpoint(out_dir, identity)
    steps_per_epoch = -(-len(images) // config.batch_size)
    done_epochs = 0 if checkpoint is None else checkpoint.member * config.epochs + checkpoint.epoch
    heads, losses = [], []
    with tqdm(total=config.ensemble * config.epochs * steps_per_epoch, initial=done_epochs * steps_per_epoch,
              desc="fit-head", unit="batch", disable=None) as progress:
        for member in range(config.ensemble):
            head = build_head(config.head, spec, seed=config.seed + member, **config.head_params).to(device)
            if checkpoint is not None and member < checkpoint.member:
                load_head_weights(head, out_dir / head_file_name(member))
                heads.append(head.to(device).eval())
                losses.append(checkpoint.losses[member])
                continue
            optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
            member_losses: list[float] = []
            if checkpoint is not None and member == checkpoint.member:
                head.load_state_dict(checkpoint.head)
                optimizer.load_state_dict(checkpoint.optimizer)
                member_losses = list(checkpoint.losses[member])
            losses.append(member_losses)
            for epoch in range(len(member_losses), config.epochs):
                member_losses.append(_train_epoch(head, optimizer, images, spec, config, member, epoch, progress))
                save_checkpoint(out_dir, Checkpoint(identity=identity, member=member, epoch=epoch + 1,
                                                    head=head.state_dict(), optimizer=optimizer.state_dict(),
                                                    losses=losses))
            write_head(out_dir, head_file_name(member), head, config.head, member)
            heads.append(head.eval())
    return heads, losses


def epoch_seed(seed: int, member: int, epoch: int) -> int:
    """The seed of everything random in one epoch of one member (batch order, windows, dropout)."""
    return int(np.random.SeedSequence([seed, member, epoch]).generate_state(1)[0])


def _train_epoch(head: nn.Module, optimizer: torch.optim.Optimizer, images: CachedImages, spec: CacheSpec,
                 config: HeadTrainingConfig, member: int, epoch: int, progress: tqdm) -> float:
    """One pass over the images; returns the mean loss per window."""
    device = next(head.parameters()).device
    seed = epoch_seed(config.seed, member, epoch)
    torch.manual_seed(seed)  # dropout; the batches are drawn from their own generator below
    side = window_side(spec, config.window)
    per_image = 1 if side == spec.canvas_size else config.windows_per_image
    steps = epoch_steps(len(images), config.batch_size, torch.Generator().manual_seed(seed))
    head.train()
    total, count = 0.0, 0
    for batch in prefetch(window_batch(images, step, spec, side, per_image) for step in steps):
        inputs = batch_to_device(batch, device)
        loss = segmentation_loss(head(inputs), inputs["vessel"].long(), config.dice_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(inputs["vessel"])
        count += len(inputs["vessel"])
        progress.update(1)
    progress.set_postfix(loss=f"{total / count:.4f}")
    return total / count


def segmentation_loss(logits: torch.Tensor, vessel: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """2-class cross-entropy (the release) plus `dice_weight` times the soft-Dice loss of the vessel class.

    Parameters
    ----------
    logits : (B, 2, y, x) tensor
    vessel : (B, y, x) int64 tensor of 0/1
    """
    loss = F.cross_entropy(logits, vessel)
    if dice_weight > 0:
        prob = torch.softmax(logits, dim=1)[:, 1]
        truth = vessel.float()
        dice = (2 * (prob * truth).sum() + 1) / (prob.sum() + truth.sum() + 1)
        loss = loss + dice_weight * (1 - dice)
    return loss
