"""Where a backbone run keeps what it needs to continue: one file, `checkpoints/latest.pt`, replaced at each update.

One file whose name never changes lets a run folder be committed or copied as a whole and continued on another
machine with `--resume`. It holds the model, its EMA copy, the optimizer, the step, the loss history, the pool's
appearance statistics and the pieces the run was trained in; nothing else is needed to continue exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dgss.files import atomic_path

CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "latest.pt"
_LEGACY_PATTERN = "step-*.pt"  # dgss before one file: step-XXXXXXXX.pt, the last two kept


def find_checkpoint(out: Path) -> Path | None:
    """`latest.pt`, else the newest `step-XXXXXXXX.pt` of a run folder written before; None when there is none."""
    folder = Path(out) / CHECKPOINT_DIR
    latest = folder / LATEST_CHECKPOINT
    if latest.is_file():
        return latest
    legacy = sorted(folder.glob(_LEGACY_PATTERN))
    return legacy[-1] if legacy else None


def save_checkpoint(out: Path, state: dict[str, Any]) -> Path:
    """Replace `latest.pt` atomically (temporary file, fsync, rename): an interrupt leaves the old or the new one.

    The `step-XXXXXXXX.pt` files of an older run folder are removed once it is written: they are behind it.
    """
    folder = Path(out) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / LATEST_CHECKPOINT
    with atomic_path(target) as temporary:
        torch.save(state, temporary)
    for legacy in folder.glob(_LEGACY_PATTERN):
        legacy.unlink()
    return target


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """The saved state, tensors on `device` (any device: a run may continue on another machine)."""
    return torch.load(path, map_location=device, weights_only=True)

