"""The training checkpoint inside a run folder: where fit-head stopped, so that `--resume` continues it exactly.

Written after every epoch through a temporary name and a rename, so a kill at any moment leaves the previous
checkpoint or the new one, never half of one. It holds the member being trained, its epoch, weights, optimizer
state and losses; members already finished are their head files beside it. Everything random in an epoch is
seeded by (seed, member, epoch), so continuing from the start of an epoch repeats exactly what an uninterrupted
run does there. The checkpoint is removed once `run.json` is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dgss.aggregate.heads import HEAD_NAMES, recorded_head_params
from dgss.errors import OtherSettingsError, RunError
from dgss.files import atomic_path

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class Checkpoint:
    """Training state after ``epoch`` epochs of ensemble member ``member``.

    ``identity`` is what must not change between a run and its resumption (training config, sources, key);
    ``losses`` holds the per-epoch mean loss of every member so far, the current one last; ``validation`` the
    validation scores of every member so far (dicts of `ValidationScore`), and ``best_head`` the current member's
    weights at its best validation score (None before its first validation, or without validation). ``phase`` is
    the training phase whose optimizer ``optimizer`` is (`dgss.aggregate.phases`; "joint" in checkpoints from before
    phases existed).
    """

    identity: dict[str, Any]
    member: int
    epoch: int
    head: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    losses: list[list[float]]
    validation: list[list[dict[str, Any]]]
    best_head: dict[str, torch.Tensor] | None
    phase: str = "joint"


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> None:
    """Replace the run folder's checkpoint atomically."""
    with atomic_path(run_dir / CHECKPOINT_FILE) as temporary:
        torch.save({"identity": json.dumps(checkpoint.identity, sort_keys=True), "member": checkpoint.member,
                    "epoch": checkpoint.epoch, "head": checkpoint.head, "optimizer": checkpoint.optimizer,
                    "losses": checkpoint.losses, "validation": json.dumps(checkpoint.validation),
                    "best_head": checkpoint.best_head, "phase": str(checkpoint.phase)}, temporary)


def load_checkpoint(run_dir: Path, identity: dict[str, Any]) -> Checkpoint | None:
    """The run folder's checkpoint, None where there is none; RunError when it is corrupt or from other settings."""
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        saved = json.loads(data["identity"])
        changed = changed_settings(saved, identity)
    except Exception as error:  # a truncated or foreign file: any of pickle's, zip's or json's errors
        raise RunError(f"checkpoint {path} is corrupt ({type(error).__name__}): delete it, or pass --overwrite "
                       "to train the run from the start") from None
    if changed:
        raise OtherSettingsError(f"checkpoint {path} was written with other settings ({', '.join(changed)} differ): "
                                 "resume with the options of the stopped run, or pass --overwrite to start again")
    return Checkpoint(identity=identity, member=int(data["member"]), epoch=int(data["epoch"]), head=data["head"],
                      optimizer=data["optimizer"], losses=[list(map(float, member)) for member in data["losses"]],
                      validation=json.loads(data["validation"]), best_head=data["best_head"],
                      phase=str(data.get("phase", "joint")))


def remove_checkpoint(run_dir: Path) -> None:
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)


def changed_settings(saved: dict[str, Any], identity: dict[str, Any]) -> list[str]:
    """The dotted names of the settings in which a stopped or finished run's `saved` identity differs from the
    `identity` of the run asked for now (its tuples compared as the lists JSON gives back), its head fields read
    as their code meant them (see below)."""
    return sorted(_changed_fields(_with_predated_head_fields(saved), json.loads(json.dumps(identity))))


def _with_predated_head_fields(identity: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``identity`` with each head field its run predates set to what its absence meant then, so a run
    resumes under newer code where the field's meaning is unchanged (and is refused, naming it, where not)."""
    training = identity.get("training", {})
    if training.get("head") not in HEAD_NAMES:
        return identity
    head_params = recorded_head_params(training["head"], training.get("head_params", {}))
    return {**identity, "training": {**training, "head_params": head_params}}


def _changed_fields(saved: dict[str, Any], expected: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for name in sorted(set(saved) | set(expected)):
        old, new = saved.get(name), expected.get(name)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += _changed_fields(old, new, f"{prefix}{name}.")
        elif old != new:
            changed.append(f"{prefix}{name}")
    return changed
