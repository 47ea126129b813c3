"""What a finished fit-head run says about itself: the lines a user needs before trusting its scores.

A run that trained on 3 images and validated on 1, whose windows were silently the whole canvas, or whose kept
epoch was the first, looks like any other run in its folder; these lines say so at the end of the fit and in its
log.txt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dgss.aggregate.spec import CacheSpec
from dgss.aggregate.windows import window_side


def window_warnings(spec: CacheSpec, window: int | None) -> list[str]:
    """A line when the requested training window is not the one used (the canvas is smaller, or the window is not a
    multiple of the coarsest feature stride); none when it is."""
    if window is None:
        return []
    used = window_side(spec, window)
    if used == window:
        return []
    if used == spec.canvas_size:
        return [f"--window {window} is at least the {spec.canvas_size} px canvas of this cache: trained on whole "
                f"canvases (pass --window 0 to say so, or extract at a larger --input-size)"]
    return [f"--window {window} is not a multiple of the coarsest feature stride ({spec.window_multiple} px): "
            f"trained on {used} px windows"]


def fit_summary(*, sources: Mapping[str, Sequence[str]], validation: Mapping[str, Sequence[str]],
                selection: Sequence[Mapping[str, Any]], epochs: int) -> list[str]:
    """One line for the images, then one per ensemble member: the epoch and threshold it kept and its validation
    Dice (best-threshold, on the held-out source images) and AUC-ROC."""
    trained = ", ".join(f"{dataset} {len(ids)}" for dataset, ids in sources.items())
    held = ", ".join(f"{dataset} {len(ids)}" for dataset, ids in validation.items() if ids) or "none"
    lines = [f"fit-head: trained on {sum(map(len, sources.values()))} images ({trained}); validated on "
             f"{sum(map(len, validation.values()))} ({held})"]
    for member, kept in enumerate(selection):
        if kept["epoch"] is None:
            lines.append(f"fit-head: head {member}: no validation images, kept the last epoch ({epochs}) and "
                         f"threshold {kept['threshold']}")
            continue
        best = next(score for score in kept["history"] if score["epoch"] == kept["epoch"])
        lines.append(f"fit-head: head {member}: kept epoch {kept['epoch']} of {epochs}, threshold "
                     f"{kept['threshold']:.3f}; validation Dice {best['dice']:.4f}, AUC-ROC {best['auc_roc']:.4f}")
    return lines
