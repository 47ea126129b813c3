"""Train an ensemble of heads on cached features of one or more source datasets and save it as a run.

Training reads only the Zarr cache (no UNet, no image decoding). The loss is the release's 2-class cross-entropy
over the canvas plus an optional soft-Dice term; Adam; each ensemble member is an independently seeded head
(seed + member). The release trains ten heads (`ensemble=10`); the default here is one, ten times cheaper.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dgss.aggregate.data import CachedImages, split_indices
from dgss.aggregate.heads import build_head, head_uses_features
from dgss.aggregate.run import RunRecord, batch_to_device, check_out_dir, head_file_name, write_run
from dgss.aggregate.spec import CacheSpec
from dgss.store import Entry, FeatureStore
from dgss.store.errors import DgssError, StoreError

SOURCE_SPLIT = "training"


@dataclass(frozen=True, kw_only=True)
class HeadTrainingConfig:
    """Hyperparameters of one fit-head run; defaults are the release's except `ensemble` (release: 10)."""

    head: str = "tsfreqagg"
    head_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 2
    lr: float = 2e-3
    seed: int = 0
    ensemble: int = 1
    dice_weight: float = 0.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "ensemble"):
            if getattr(self, name) < 1:
                raise DgssError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.dice_weight < 0:
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
             key: str | None = None) -> Path:
    """Train `config.ensemble` heads on the sources' cached features; write the run folder; return it.

    Each source contributes its done images of the "training" split, or all of its done images where it has no
    such split. All sources must be cached under one extraction key (`key`, or each dataset's only key).
    """
    check_out_dir(out_dir)
    store = FeatureStore(store_path, create=False)
    entries = resolve_sources(store, sources, key)
    items, used = [], {}
    for entry in entries:
        _, indices = split_indices(entry, SOURCE_SPLIT)
        items += [(entry, index) for index in indices]
        used[entry.dataset] = [entry.image_ids[index] for index in indices]
    first = entries[0]
    spec = CacheSpec.from_entry_attrs(first.config, first.attrs)
    heads, losses = train_heads(CachedImages(items, features=head_uses_features(config.head)), spec, config)
    resolved = dataclasses.replace(config, head_params=heads[0].config.to_dict())
    record = RunRecord(
        training=resolved.to_dict(), key=first.key, store=str(Path(store_path).resolve()), sources=used,
        extraction_config=first.config, spec=spec.to_dict(),
        head_files=tuple(head_file_name(member) for member in range(config.ensemble)),
    )
    write_run(out_dir, record, heads, losses)
    return Path(out_dir)


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


def train_heads(images: CachedImages, spec: CacheSpec,
                config: HeadTrainingConfig) -> tuple[list[nn.Module], list[list[float]]]:
    """Train the ensemble; return the heads (eval mode) and every member's per-epoch mean loss."""
    device = torch.device(config.device)
    steps = config.ensemble * config.epochs * -(-len(images) // config.batch_size)
    heads, losses = [], []
    with tqdm(total=steps, desc="fit-head", unit="batch", disable=None) as progress:
        for member in range(config.ensemble):
            seed = config.seed + member
            torch.manual_seed(seed)  # dropout and batch order; the weights are drawn from `seed` by build_head
            head = build_head(config.head, spec, seed=seed, **config.head_params).to(device)
            loader = DataLoader(images, batch_size=config.batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(seed))
            losses.append(_train_member(head, loader, config, device, progress))
            heads.append(head.eval())
    return heads, losses


def _train_member(head: nn.Module, loader: DataLoader, config: HeadTrainingConfig, device: torch.device,
                  progress: tqdm) -> list[float]:
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    head.train()
    epoch_losses = []
    for _ in range(config.epochs):
        total, count = 0.0, 0
        for batch in loader:
            inputs = batch_to_device(batch, device)
            loss = segmentation_loss(head(inputs), inputs["vessel"].long(), config.dice_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(inputs["vessel"])
            count += len(inputs["vessel"])
            progress.update(1)
        epoch_losses.append(total / count)
        progress.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
    return epoch_losses


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
