"""The run folder: an ensemble of trained heads (safetensors) plus `run.json`; writing it and loading it back.

A folder is a run only once its `run.json` exists: each head file is written (through a temporary name and a
rename) as its member finishes training, and `write_run` adds the loss curve and then `run.json` last, so a
training that stops half-way leaves nothing a later `dgss evaluate` would trust. `load_run` checks every file and names the one that is missing or corrupt.

Layout::

    RUN/run.json                  RunRecord: training config, cache key, store, backbone, sources, extraction config
    RUN/head_00.safetensors ...   one file per ensemble member (metadata: head name, member number)
    RUN/loss.csv, RUN/loss.png    per-epoch mean training loss of every member
    RUN/checkpoint.pt             while training only: where fit-head stopped (see `dgss.aggregate.checkpoint`)

A loaded `Run` carries how its heads are applied (`tile`, `tile_context`, thresholds); `dgss.aggregate.inference`
applies them.
"""

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from dgss.aggregate.checkpoint import CHECKPOINT_FILE, changed_settings
from dgss.aggregate.heads import build_head, recorded_head_params
from dgss.aggregate.report import write_json, write_loss_curve
from dgss.aggregate.safetensors_bytes import canonical_safetensors
from dgss.aggregate.settings import InferenceSettings
from dgss.aggregate.spec import CacheSpec
from dgss.datasets.photometric import viewed_dataset
from dgss.errors import OtherSettingsError, RunError
from dgss.files import atomic_path
from dgss.store import store_location
from dgss.store.feature_store import is_url

RUN_FORMAT = 1
RUN_FILE = "run.json"
DEFAULT_TILE = InferenceSettings.tile.default
"""Side of the tiles a head is applied in, canvas pixels: the whole default 512 px canvas in one call."""
DEFAULT_THRESHOLD = 0.5
"""Decision threshold of a member with no validation-chosen one (a run trained without validation images)."""
OTSU = "otsu"
"""The `threshold` that asks for a per-image threshold reading no label (see `otsu_threshold`)."""
DEFAULT_TILE_CONTEXT = InferenceSettings.tile_context.default
"""Margin dropped from each inner tile edge, canvas pixels: the receptive field of the T&S-FreqAgg head at the
default strides (96 px, measured by its gradient), so tiles give the same logits as a whole canvas."""


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """What `run.json` holds: enough to rebuild the heads and to find and check the cache they were trained on.

    `training` is `HeadTrainingConfig.to_dict()`; its "head" and "head_params" rebuild the heads.
    `extraction_config` is the source entries' config (its hash is `key`); `spec` is `CacheSpec.to_dict()`, from
    which the heads are rebuilt. `sources` and `validation_images` name the images trained on and held out to
    choose, per member, the epoch and decision threshold kept in `selection` ({"epoch", "threshold", "history"}).
    `store` is a URL, or a local path relative to the run folder (absolute in runs written before; `run_store`
    reads both); `backbone` names the model the features came from (`backbone_reference`; "" in older runs).
    """

    training: dict[str, Any]
    key: str
    store: str
    sources: dict[str, list[str]]
    extraction_config: dict[str, Any]
    spec: dict[str, Any]
    head_files: tuple[str, ...]
    validation_images: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    selection: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    backbone: str = ""
    format: int = RUN_FORMAT

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Each member's decision threshold: chosen on the validation images, else :data:`DEFAULT_THRESHOLD`."""
        chosen = [float(member["threshold"]) for member in self.selection]
        return tuple(chosen) if len(chosen) == len(self.head_files) else (DEFAULT_THRESHOLD,) * len(self.head_files)

    def seen_images(self, dataset: str) -> set[str]:
        """Ids of `dataset`'s images the run learned from or was selected on, through photometric views of them
        too."""
        return {image_id for source, ids in (*self.sources.items(), *self.validation_images.items())
                if viewed_dataset(source) == viewed_dataset(dataset) for image_id in ids}

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "head_files": list(self.head_files)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunRecord":
        """Rebuild from `to_dict()` output; KeyError/TypeError on a missing or extra field (load_run names the file)."""
        required = {field.name for field in dataclasses.fields(cls)
                    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise KeyError(f"missing field(s) {', '.join(missing)}")
        return cls(**{**data, "head_files": tuple(data["head_files"])})


@dataclass(frozen=True)
class Run:
    """A loaded run: its folder, record, cache spec and heads (in eval mode, on `device`), the tiles the heads
    are applied in, and each head's decision threshold (or, with `per_image_threshold`, Otsu's threshold of each
    head's probabilities inside each image's FOV)."""

    path: Path
    record: RunRecord
    spec: CacheSpec
    heads: tuple[nn.Module, ...]
    device: torch.device
    tile: int | None = DEFAULT_TILE
    tile_context: int = DEFAULT_TILE_CONTEXT
    thresholds: tuple[float, ...] = ()
    per_image_threshold: bool = False
    flips: bool = False

    @property
    def key(self) -> str:
        return self.record.key


def head_file_name(member: int) -> str:
    return f"head_{member:02d}.safetensors"


def prepare_out_dir(out_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> bool:
    """Check `out_dir` before any training; return True when it holds a finished run that `resume` keeps.

    A folder that already holds a run (finished or stopped) is refused unless `resume` (continue a stopped one,
    keep a finished one) or `overwrite` (train again from the start: the old `run.json` and checkpoint are removed
    at once, so the folder is never taken for a run that mixes old and new heads).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"--out {out_dir} is a file, not a folder: choose another run folder")
    finished = (out_dir / RUN_FILE).is_file()
    stopped = (out_dir / CHECKPOINT_FILE).is_file()
    if overwrite:
        (out_dir / RUN_FILE).unlink(missing_ok=True)
        (out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        return False
    if resume:
        return finished and not stopped
    if finished or stopped:
        state = "a finished run" if finished else "a stopped run"
        raise RunError(f"--out {out_dir} already holds {state}: pass --resume to continue it, --overwrite to train "
                       "it again from the start, or choose another folder")
    return False


def write_head(out_dir: Path, name: str, head: nn.Module, head_name: str, member: int) -> None:
    """Write one member's weights atomically, the header's keys sorted: the same weights, the same bytes."""
    with atomic_path(out_dir / name) as temporary:
        save_model(head, str(temporary), metadata={"head": head_name, "member": str(member)})
        temporary.write_bytes(canonical_safetensors(temporary.read_bytes()))
        os.chmod(temporary, 0o644)


def recorded_store(store: str | Path, run_dir: str | Path) -> str:
    """How run.json names its store: a URL as given, a local store relative to the run folder, so that a run moved
    or copied together with its store (to another machine, say) still finds it."""
    location = store_location(store)
    return location if is_url(location) else os.path.relpath(location, Path(run_dir).resolve())


def run_store(record: RunRecord, run_dir: str | Path) -> str:
    """The store a run was trained from, wherever its folder is now (see `recorded_store`)."""
    if is_url(record.store) or Path(record.store).is_absolute():
        return record.store
    return os.path.normpath(Path(run_dir).resolve() / record.store)


def write_run(out_dir: str | Path, record: RunRecord, losses: Sequence[Sequence[float]]) -> Path:
    """Finish a run whose head files are in `out_dir` already: write the loss curve, then `run.json` (last).

    `--overwrite` removed any old `run.json` before training (`prepare_out_dir`); one left by a run killed between
    writing it and dropping its checkpoint is removed here before the loss curve is replaced.

    Parameters
    ----------
    losses : (member,) sequences of (epoch,) float
    """
    out_dir = Path(out_dir)
    (out_dir / RUN_FILE).unlink(missing_ok=True)
    write_loss_curve(losses, out_dir)
    write_json(out_dir / RUN_FILE, record.to_dict())
    return out_dir / RUN_FILE


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", *, tile: int | None = DEFAULT_TILE,
             tile_context: int = DEFAULT_TILE_CONTEXT, threshold: float | str | None = None,
             flips: bool | None = None) -> Run:
    """Read and check a run folder; RunError naming the file that is missing or corrupt.

    `tile` and `tile_context` (canvas pixels) set how the heads are applied to a canvas; None: in one call.
    `threshold` replaces every member's stored decision threshold: a probability, or "otsu" for a threshold per
    image and member that reads no label (Otsu's, over the member's probabilities inside the image's FOV).
    `flips` applies every head to the eight flips and rotations of each canvas and averages the probabilities
    (test-time augmentation; eight times the cost). None: where the run was trained with `flips`, whose heads have
    seen flipped features; a head trained without them never has.
    """
    per_image = threshold == OTSU
    if per_image:
        threshold = None
    elif threshold is not None and not (isinstance(threshold, float | int) and 0 < threshold < 1):
        raise RunError(f"threshold {threshold!r} is neither a probability strictly between 0 and 1 nor "
                       f"{OTSU!r}: pass e.g. 0.5")
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    if not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} does not exist: train one with `dgss fit-head --out {run_dir}`")
    if not run_file.is_file():
        raise RunError(f"{run_file} is missing, so {run_dir} is not a finished run "
                       f"(did fit-head stop early?): train it again with `dgss fit-head --out {run_dir}`")
    record = read_record(run_file)
    try:
        spec = CacheSpec.from_dict(record.spec)
    except (KeyError, TypeError, ValueError) as error:
        raise RunError(f"{run_file} holds a corrupt cache spec ({error}): "
                       "train the run again with dgss fit-head") from error
    device = torch.device(device)
    heads = tuple(_load_head(run_dir / name, record, spec, device) for name in record.head_files)
    if not heads:
        raise RunError(f"{run_file} lists no head files: train the run again with `dgss fit-head --out {run_dir}`")
    thresholds = (threshold,) * len(heads) if threshold is not None else record.thresholds
    return Run(path=run_dir, record=record, spec=spec, heads=heads, device=device, tile=tile,
               tile_context=tile_context, thresholds=thresholds, per_image_threshold=per_image,
               flips=bool(record.training.get("flips", False)) if flips is None else flips)


def check_finished_run(run_dir: Path, identity: dict[str, Any]) -> None:
    """RunError naming what differs where the finished run in `run_dir` is not the run `identity` asks for (the
    identity a checkpoint holds): resume keeps a finished run only as it is, so a script that reuses run folders
    never scores an old run as one trained under new options or defaults."""
    record = read_record(run_dir / RUN_FILE)
    saved = {"training": record.training, "key": record.key, "sources": record.sources,
             "validation": record.validation_images}
    changed = changed_settings(saved, identity)
    if changed:
        raise OtherSettingsError(f"{run_dir} holds a finished run trained with other settings ({', '.join(changed)} "
                                 "differ): pass the options it was trained with, --overwrite to train it again, or "
                                 "choose another --out")


def read_record(run_file: Path) -> RunRecord:
    """The run record in `run_file`; RunError naming the file where it is corrupt or of another format."""
    try:
        data = json.loads(run_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{run_file} is corrupt ({error}): train the run again with dgss fit-head") from error
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise RunError(f"{run_file} is not a dgss run record of format {RUN_FORMAT}: "
                       "train the run again with dgss fit-head")
    try:
        return RunRecord.from_dict(data)
    except (KeyError, TypeError) as error:
        raise RunError(f"{run_file} is corrupt ({error}): train the run again with dgss fit-head") from error


def _load_head(path: Path, record: RunRecord, spec: CacheSpec, device: torch.device) -> nn.Module:
    if not path.is_file():
        raise RunError(f"head file {path} is missing: train the run again with dgss fit-head")
    name = record.training["head"]
    head = build_head(name, spec, **recorded_head_params(name, record.training["head_params"]))
    load_head_weights(head, path)
    return head.to(device).eval()


def load_head_weights(head: nn.Module, path: Path, device: torch.device | str = "cpu") -> None:
    """Load a head file into `head`; RunError naming the file when it is corrupt or does not fit."""
    try:
        load_model(head, str(path), strict=True, device=str(device))
    except (SafetensorError, RuntimeError, OSError) as error:
        reason = str(error).splitlines()[0]
        raise RunError(f"head file {path} is corrupt or does not fit the run's head ({reason}): "
                       "train the run again with dgss fit-head") from error
