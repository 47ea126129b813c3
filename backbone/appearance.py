"""Appearance matching: map every image's colour statistics inside its FOV to those of the backbone's training pool.

Cameras differ in exposure and colour balance far more than in anatomy (CHASE_DB1's mean blue level inside the FOV
is ~10 of 255, the fundus pool's ~55), and a diffusion UNet's features follow the input's intensities. Matching
each channel's FOV mean and standard deviation to the pool's puts every target image inside the appearance range
the backbone was trained on, before any feature is computed; it reads nothing but the image itself, so no target
data leaks into training.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgss.errors import ModelError
from dgss.files import write_bytes_atomic

APPEARANCE_FILE = "dgss_appearance.json"
POOL, NONE = "pool", "none"
"""`--appearance` choices besides a file: the backbone's own pool target (the default), or no matching."""
logger = logging.getLogger("dgss")


@dataclass(frozen=True, kw_only=True)
class AppearanceTarget:
    """Per-channel (R, G, B) mean and standard deviation of pixel values inside the FOV, on 0..255."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [round(value, 3) for value in self.mean], "std": [round(value, 3) for value in self.std]}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> AppearanceTarget:
        return cls(mean=tuple(data["mean"]), std=tuple(data["std"]))


class AppearanceMeter:
    """Running per-image FOV statistics; the target is their average over images (each image weighs the same)."""

    def __init__(self) -> None:
        self._means: list[np.ndarray] = []
        self._stds: list[np.ndarray] = []

    def add(self, image: np.ndarray, fov: np.ndarray) -> None:
        """Record one (y, x, rgb) uint8 image; an empty FOV counts the whole frame."""
        pixels = image[fov] if fov.any() else image.reshape(-1, 3)
        self._means.append(pixels.mean(axis=0))
        self._stds.append(pixels.std(axis=0))

    def target(self) -> AppearanceTarget | None:
        """The average statistics, or None before any image was seen."""
        if not self._means:
            return None
        mean, std = np.mean(self._means, axis=0), np.mean(self._stds, axis=0)
        return AppearanceTarget(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))


def match_appearance(image: np.ndarray, fov: np.ndarray, target: AppearanceTarget) -> np.ndarray:
    """`image` with each channel's FOV mean and std set to the target's; pixels outside the FOV are left as they are.

    Parameters
    ----------
    image : (y, x, rgb) uint8
    fov : (y, x) bool

    Returns
    -------
    (y, x, rgb) uint8
    """
    if not fov.any():
        return image
    pixels = image[fov].astype(np.float64)
    scaled = (pixels - pixels.mean(axis=0)) / np.maximum(pixels.std(axis=0), 1.0)
    matched = image.copy()
    matched[fov] = np.clip(np.round(scaled * target.std + target.mean), 0, 255).astype(np.uint8)
    return matched


def load_appearance(folder: str | Path) -> AppearanceTarget | None:
    """The target saved beside a backbone's weights, or None when the folder has none (then nothing is matched)."""
    path = Path(folder) / APPEARANCE_FILE
    return AppearanceTarget.from_dict(json.loads(path.read_text())) if path.is_file() else None


def save_appearance(folder: str | Path, target: AppearanceTarget) -> None:
    """Write the target beside a backbone's weights."""
    write_bytes_atomic(Path(folder) / APPEARANCE_FILE, (json.dumps(target.to_dict(), indent=2) + "\n").encode())


def chosen_appearance(choice: str, pool: AppearanceTarget | None, model: str) -> AppearanceTarget | None:
    """The target `--appearance` asks for: `pool`, the backbone's own (with a warning where the backbone has none,
    e.g. a model not trained by dgss: nothing would be matched); `none`, no matching; else a dgss_appearance.json
    file, or a backbone folder holding one (a shipped backbone's target for a model without its own)."""
    if choice == NONE:
        return None
    if choice == POOL:
        if pool is None:
            logger.warning("model %s has no appearance target (%s), so images are not matched to one (worth about "
                           "+0.10 Dice on CHASE_DB1 with the shipped backbone): pass --appearance FILE (e.g. a shipped "
                           "backbone's %s), or --appearance none to say so", model, APPEARANCE_FILE, APPEARANCE_FILE)
        return pool
    path = Path(choice).expanduser()
    file = path / APPEARANCE_FILE if path.is_dir() else path
    try:
        return AppearanceTarget.from_dict(json.loads(file.read_text()))
    except OSError:
        raise ModelError(f"--appearance {choice}: no file {file}; pass pool, none, or a {APPEARANCE_FILE} file (or "
                         "a backbone folder holding one)") from None
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"--appearance {file} is not an appearance target: give a JSON file with 'mean' and 'std', "
                         f"three values each, as {APPEARANCE_FILE} beside a dgss backbone holds") from None
