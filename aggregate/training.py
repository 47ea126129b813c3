"""Train an ensemble of heads on cached features of one or more source datasets and save it as a run.

Training reads only the Zarr cache (no UNet, no image decoding), and by default not whole canvases but random
windows of them (`window`, canvas pixels; `windows_per_image` per image read): a step costs the same whatever the
canvas, and what a head has to learn about vessels is local. The loss is the release's 2-class cross-entropy plus
an optional soft-Dice term, over the pixels inside the field of view only (the padding and the black border around
the fundus teach nothing about vessels); Adam; each ensemble member is an independently seeded head (seed + member).
A validation part of the sources picks each member's epoch and decision threshold (`dgss.aggregate.validation`).
A checkpoint is written after every epoch, so a stopped run continues exactly with `resume=True`.
"""

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dgss.aggregate.checkpoint import Checkpoint, load_checkpoint, remove_checkpoint, save_checkpoint
from dgss.aggregate.data import CachedImages, MemoryBudget, epoch_steps, prefetch, split_indices, warn_pending, window_batch
from dgss.aggregate.fit_summary import fit_summary, window_warnings
from dgss.aggregate.heads import build_head, fitted_head_params, head_config, head_uses_features
from dgss.aggregate.inference import batch_to_device
from dgss.aggregate.phases import Phase, check_phases, enter_phase, epoch_phase, trainable_parameters
from dgss.aggregate.run import (DEFAULT_THRESHOLD, RunRecord, check_finished_run, head_file_name, load_head_weights,
                                prepare_out_dir, recorded_store, write_head, write_run)
from dgss.aggregate.selection import select_spec
from dgss.aggregate.settings import MEMORY_GIB, TrainingSettings
from dgss.aggregate.spec import CacheSpec
from dgss.aggregate.validation import held_out_ids, score_validation
from dgss.aggregate.windows import window_side
from dgss.backbone.shipped import backbone_reference
from dgss.datasets import canonical_name
from dgss.errors import DgssError, StoreError
from dgss.extract.dataset_files import check_unchanged
from dgss.extract.hints import extract_command
from dgss.progress import Progress, log_file
from dgss.settings import check_settings
from dgss.store import Entry, FeatureStore

SOURCE_SPLIT = "training"
DEFAULT_KEEP_BYTES = int(MEMORY_GIB.default * 2**30)  # decoded source images kept in RAM by default
logger = logging.getLogger("dgss")


@dataclass(frozen=True, kw_only=True)
class HeadTrainingConfig:
    """Hyperparameters of one fit-head run.

    `batch_size` images are read per step and `windows_per_image` random windows of `window` canvas pixels are
    cut from each (`window=None`: whole canvases, one per image, as the release trains). Optimiser settings are
    the release's; `ensemble` is 1 here (release: 10). `validation_fraction` of each source's images are held out
    and scored every `validate_every` epochs to choose the epoch and threshold (0: train on all, keep the last
    epoch, threshold 0.5). `flips` applies a random flip/rotation to every training window. `lr_schedule`
    "cosine" anneals the learning rate from `lr` to 0 over each member's steps (the release keeps it constant).
    `blocks` and `timesteps` train on that part of the cache only (None: all it holds; `dgss.aggregate.selection`),
    `bands` "LL" on its smooth Haar band alone ("all": every cached band). `phases` "experts-then-gate" trains as
    the release does, the per-timestep experts first and then the time gate alone (`dgss.aggregate.phases`).
    """

    head: str = TrainingSettings.head.default
    head_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = TrainingSettings.epochs.default
    batch_size: int = TrainingSettings.batch_size.default
    window: int | None = TrainingSettings.window.default  # 0 or None: whole canvases
    windows_per_image: int = TrainingSettings.windows_per_image.default
    lr: float = TrainingSettings.lr.default
    lr_schedule: str = TrainingSettings.lr_schedule.default
    seed: int = TrainingSettings.seed.default
    ensemble: int = TrainingSettings.ensemble.default
    dice_weight: float = TrainingSettings.dice_weight.default
    validation_fraction: float = TrainingSettings.validation_fraction.default
    validate_every: int = TrainingSettings.validate_every.default
    flips: bool = TrainingSettings.flips.default
    blocks: tuple[str, ...] | None = None
    timesteps: tuple[int, ...] | None = None
    bands: str = TrainingSettings.bands.default
    device: str = TrainingSettings.device.default
    phases: str = TrainingSettings.phases.default

    def __post_init__(self) -> None:
        for name in ("blocks", "timesteps"):  # JSON gives lists back; a config compares equal to its record
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check_settings(self, TrainingSettings, DgssError)  # the bounds `dgss fit-head` checks its options against
        for name in ("head", "lr_schedule", "bands", "phases"):  # plain strings in the record, however given
            object.__setattr__(self, name, str(getattr(self, name)))
        check_phases(self.phases, self.epochs, self.head, self.head_params)
        if self.window == 0:
            object.__setattr__(self, "window", None)

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
             key: str | None = None, *, resume: bool = False, overwrite: bool = False,
             keep_bytes: int = DEFAULT_KEEP_BYTES) -> Path:
    """Train `config.ensemble` heads on the sources' cached features; write the run folder; return it.

    Up to `keep_bytes` of decoded source images (training first, then validation) stay in RAM for the whole run
    instead of being read again every epoch; the batches, and so the heads, are the same whatever the budget.

    Each source contributes its done images with a vessel label of the "training" split, or of all its images
    where it has no such split (images not extracted yet, or unlabelled, are counted in a warning). All sources must be cached under one
    extraction key (`key`, or each dataset's only key). An `out_dir` that holds a run is refused unless `resume`
    (continue a stopped run from its last epoch; keep a finished one, if trained as asked) or `overwrite`.
    """
    out_dir = Path(out_dir)
    store = FeatureStore(store_path, create=False)
    entries = resolve_sources(store, sources, key)
    finished = prepare_out_dir(out_dir, resume=resume, overwrite=overwrite)
    with log_file(out_dir):
        return _fit_head(store_path, entries, out_dir, config, keep_bytes, finished=finished)


def _fit_head(store_path: str | Path, entries: list[Entry], out_dir: Path, config: HeadTrainingConfig,
              keep_bytes: int, *, finished: bool) -> Path:
    """The training itself (none where `finished`, once the run there is checked to be the one asked for), its
    warnings and summary logged into the run folder's log.txt too."""
    items, held, used, validation_ids, usable = [], [], {}, {}, {}
    for entry in entries:
        split, usable[entry.dataset] = split_indices(entry, SOURCE_SPLIT)
        warn_pending(entry, split, "training on")
    held_ids = held_out_ids(entries, usable, config.validation_fraction, config.seed)
    for entry in entries:
        indices = usable[entry.dataset]
        training = [index for index in indices if entry.image_ids[index] not in held_ids[entry.dataset]]
        validation = [index for index in indices if entry.image_ids[index] in held_ids[entry.dataset]]
        items += [(entry, index) for index in training]
        held += [(entry, index) for index in validation]
        used[entry.dataset] = [entry.image_ids[index] for index in training]
        validation_ids[entry.dataset] = [entry.image_ids[index] for index in validation]
    first = entries[0]
    spec = select_spec(CacheSpec.from_entry_attrs(first.config, first.attrs), config.blocks, config.timesteps,
                       config.bands)
    features = head_uses_features(config.head)
    budget = MemoryBudget(keep_bytes)
    images = CachedImages(items, features=features, budget=budget, spec=spec)
    validation_images = CachedImages(held, features=features, budget=budget, spec=spec)
    # What the head fixes from its training images (a green U-Net's mean and spread), recorded in the run.
    config = dataclasses.replace(config, head_params=fitted_head_params(config.head, config.head_params, images))
    # Every hyperparameter, defaults included: a checkpoint written under other defaults is refused, not misloaded.
    resolved = dataclasses.replace(config, head_params=head_config(config.head, **config.head_params).to_dict())
    identity = {"training": resolved.to_dict(), "key": first.key, "sources": used, "validation": validation_ids}
    if finished:
        check_finished_run(out_dir, identity)
        logger.warning("%s is a finished run of these settings; nothing to resume", out_dir)
        return out_dir
    for warning in window_warnings(spec, config.window):
        logger.warning("%s", warning)
    out_dir.mkdir(parents=True, exist_ok=True)
    heads, losses, histories = train_heads(images, validation_images, spec, config, out_dir, identity)
    record = RunRecord(
        training=resolved.to_dict(), key=first.key, store=recorded_store(store_path, out_dir), sources=used,
        extraction_config=first.config, spec=spec.to_dict(),
        head_files=tuple(head_file_name(member) for member in range(config.ensemble)),
        validation_images=validation_ids, selection=[_selection(history) for history in histories],
        backbone=backbone_reference(first.attrs["model"]) if first.attrs.get("model") else "",
    )
    write_run(out_dir, record, losses)
    remove_checkpoint(out_dir)
    for line in fit_summary(sources=used, validation=validation_ids, selection=record.selection, epochs=config.epochs):
        logger.info("%s", line)
    return out_dir


def resolve_sources(store: FeatureStore, sources: Sequence[str], key: str | None) -> list[Entry]:
    """The sources' entries, all under one key; StoreError listing the keys when they differ."""
    if not sources:
        raise StoreError("no source dataset given: name one or more with --source, e.g. --source DRIVE,STARE")
    sources = [canonical_name(source) for source in sources]  # folder:mini and folder:/abs/mini are one
    repeated = sorted({source for source in sources if list(sources).count(source) > 1})
    if repeated:
        raise DgssError(f"source {', '.join(repeated)} given twice: name each source once (--source), or it would "
                        "be trained on twice")
    entries = [_source_entry(store, source, key, sources) for source in sources]
    for entry in entries:
        check_unchanged(entry, store.location)
    keys = {entry.key for entry in entries}
    if len(keys) > 1:
        found = ", ".join(f"{entry.dataset}: {entry.key}" for entry in entries)
        raise StoreError(f"sources are cached under different extraction keys ({found}): "
                         "train on sources that share one key, or choose one with --key")
    return entries


def _source_entry(store: FeatureStore, source: str, key: str | None, sources: Sequence[str]) -> Entry:
    """The source's entry; where it is not cached at all, a StoreError whose `dgss extract` command gives it the key
    of the other sources (or `key`), every option of that key included."""
    try:
        return store.entry(source, key)
    except StoreError:
        cached = store.entries()
        peers = [info for info in cached if (info.key == key if key else info.dataset in sources)]
        if not peers or any(info.dataset == source for info in cached):
            raise
        peer = store.entry(peers[0].dataset, peers[0].key)
        command = extract_command(source, store.location, peer.config, peer.attrs.get("model"))
        raise StoreError(f"no features for {source} in {store.location} under the key of {peer.dataset} "
                         f"({peer.key}): `{command}` would add it") from None


def train_heads(images: CachedImages, validation: CachedImages, spec: CacheSpec, config: HeadTrainingConfig,
                out_dir: Path, identity: dict[str, Any],
                ) -> tuple[list[nn.Module], list[list[float]], list[list[dict[str, Any]]]]:
    """Train the ensemble, from the checkpoint in `out_dir` where there is one; return the heads (eval mode),
    every member's per-epoch mean loss and its validation scores. Each member keeps its weights at its best
    validation score (its last epoch without validation images); its head file is written as soon as it is done."""
    device = torch.device(config.device)
    checkpoint = load_checkpoint(out_dir, identity)
    steps_per_epoch = -(-len(images) // config.batch_size)
    done_epochs = 0 if checkpoint is None else checkpoint.member * config.epochs + checkpoint.epoch
    heads, losses, histories = [], [], []
    with Progress(config.ensemble * config.epochs * steps_per_epoch, "fit-head", "batches",
                  initial=done_epochs * steps_per_epoch) as progress:
        for member in range(config.ensemble):
            head = build_head(config.head, spec, seed=config.seed + member, **config.head_params).to(device)
            if checkpoint is not None and member < checkpoint.member:
                load_head_weights(head, out_dir / head_file_name(member))
                heads.append(head.to(device).eval())
                losses.append(checkpoint.losses[member])
                histories.append(checkpoint.validation[member])
                continue
            phase = epoch_phase(config.phases, config.epochs, 0)
            optimizer = _optimizer(head, phase, config)
            member_losses: list[float] = []
            history: list[dict[str, Any]] = []
            best_head = None
            if checkpoint is not None and member == checkpoint.member:
                head.load_state_dict(checkpoint.head)
                phase = Phase(checkpoint.phase)
                optimizer = _optimizer(head, phase, config)
                optimizer.load_state_dict(checkpoint.optimizer)
                member_losses = list(checkpoint.losses[member])
                history, best_head = list(checkpoint.validation[member]), checkpoint.best_head
            losses.append(member_losses)
            histories.append(history)
            for epoch in range(len(member_losses), config.epochs):
                if epoch_phase(config.phases, config.epochs, epoch) != phase:
                    phase = epoch_phase(config.phases, config.epochs, epoch)
                    optimizer = _optimizer(head, phase, config)
                member_losses.append(_train_epoch(head, optimizer, phase, images, spec, config, member, epoch,
                                                  progress))
                figures = {"head": f"{member + 1}/{config.ensemble}", "epoch": f"{epoch + 1}/{config.epochs}",
                           "loss": f"{member_losses[-1]:.4f}"}
                if len(validation) and _validates_after(epoch + 1, config):
                    score = score_validation(head, validation, spec, epoch + 1)
                    figures["validation_Dice"] = f"{score.dice:.4f}"
                    if not history or score.dice > max(seen["dice"] for seen in history):
                        best_head = {name: value.clone() for name, value in head.state_dict().items()}
                    history.append(score.to_dict())
                progress.report(**figures)
                save_checkpoint(out_dir, Checkpoint(identity=identity, member=member, epoch=epoch + 1,
                                                    head=head.state_dict(), optimizer=optimizer.state_dict(),
                                                    losses=losses, validation=histories, best_head=best_head,
                                                    phase=phase))
            head.requires_grad_(True)  # a phase may have frozen part of it
            if best_head is not None:
                head.load_state_dict(best_head)
            write_head(out_dir, head_file_name(member), head, config.head, member)
            heads.append(head.eval())
    return heads, losses, histories


def _optimizer(head: nn.Module, phase: Phase, config: HeadTrainingConfig) -> torch.optim.Optimizer:
    """A fresh Adam over the parameters ``phase`` trains."""
    return torch.optim.Adam(trainable_parameters(head, phase), lr=config.lr)


def _validates_after(epochs_done: int, config: HeadTrainingConfig) -> bool:
    return epochs_done % config.validate_every == 0 or epochs_done == config.epochs


def _selection(history: list[dict[str, Any]]) -> dict[str, Any]:
    """What one member kept: the epoch and threshold of its best validation score (the last epoch and 0.5
    without validation), and every validation score."""
    if not history:
        return {"epoch": None, "threshold": DEFAULT_THRESHOLD, "history": []}
    best = max(history, key=lambda seen: seen["dice"])  # the first of equal scores
    return {"epoch": best["epoch"], "threshold": best["threshold"], "history": history}


def epoch_seed(seed: int, member: int, epoch: int) -> int:
    """The seed of everything random in one epoch of one member (batch order, windows, dropout)."""
    return int(np.random.SeedSequence([seed, member, epoch]).generate_state(1)[0])


def _train_epoch(head: nn.Module, optimizer: torch.optim.Optimizer, phase: Phase, images: CachedImages,
                 spec: CacheSpec, config: HeadTrainingConfig, member: int, epoch: int, progress: Progress) -> float:
    """One pass over the images training what ``phase`` trains; returns the mean loss per window."""
    device = next(head.parameters()).device
    seed = epoch_seed(config.seed, member, epoch)
    torch.manual_seed(seed)  # dropout; the batches are drawn from their own generator below
    side = window_side(spec, config.window)
    per_image = 1 if side == spec.canvas_size else config.windows_per_image
    steps = epoch_steps(len(images), config.batch_size, torch.Generator().manual_seed(seed))
    enter_phase(head, phase)
    total, count = 0.0, 0
    batches = prefetch(window_batch(images, step, spec, side, per_image, flips=config.flips) for step in steps)
    for number, batch in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, (epoch * len(steps) + number) / (config.epochs * len(steps)))
        inputs = batch_to_device(batch, device)
        loss = phase_loss(head, inputs, phase, config.dice_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(inputs["vessel"])
        count += len(inputs["vessel"])
        progress.advance()
    return total / count


def phase_loss(head: nn.Module, inputs: dict[str, torch.Tensor], phase: Phase, dice_weight: float) -> torch.Tensor:
    """The loss of the head's output, or in the experts phase the mean of every timestep's own loss."""
    vessel, fov = inputs["vessel"].long(), inputs["fov"]
    if phase != Phase.experts:
        return segmentation_loss(head(inputs), vessel, dice_weight, fov)
    experts = head.expert_logits(inputs)
    return torch.stack([segmentation_loss(experts[:, step], vessel, dice_weight, fov)
                        for step in range(experts.shape[1])]).mean()


def learning_rate(config: HeadTrainingConfig, done: float) -> float:
    """The learning rate of the step taken when a fraction `done` (0 <= done < 1) of a member's steps is done:
    a function of the step alone, so a resumed run follows the same schedule."""
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * done))
    return config.lr


def segmentation_loss(logits: torch.Tensor, vessel: torch.Tensor, dice_weight: float,
                      fov: torch.Tensor | None = None) -> torch.Tensor:
    """2-class cross-entropy (the release) plus `dice_weight` times the soft-Dice loss of the vessel class, over
    the pixels inside `fov` (all pixels when None; 0 for a batch with no FOV pixel).

    Parameters
    ----------
    logits : (B, 2, y, x) tensor
    vessel : (B, y, x) int64 tensor of 0/1
    fov : (B, y, x) bool tensor, optional
    """
    inside = torch.ones_like(vessel, dtype=torch.float32) if fov is None else fov.float()
    pixels = inside.sum().clamp(min=1)
    loss = (F.cross_entropy(logits, vessel, reduction="none") * inside).sum() / pixels
    if dice_weight > 0:
        prob = torch.softmax(logits, dim=1)[:, 1] * inside
        truth = vessel.float() * inside
        dice = (2 * (prob * truth).sum() + 1) / (prob.sum() + truth.sum() + 1)
        loss = loss + dice_weight * (1 - dice)
    return loss
