"""Ensemble inference: a loaded run's heads applied to a batch of cached features, their probabilities averaged
and their decisions voted.

Heads are applied to a whole canvas in tiles (`Run.tile`, `Run.tile_context`: see `dgss.aggregate.windows`), so the
memory of evaluation and prediction is bounded by the tile, not by the canvas.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from skimage.filters import threshold_otsu

from dgss.aggregate.augment import SYMMETRIES, apply_symmetry, undo_symmetry
from dgss.aggregate.run import DEFAULT_THRESHOLD, Run
from dgss.aggregate.selection import select_features
from dgss.aggregate.windows import tiled_logits
from dgss.store.schema import FEATURE_PREFIX


def batch_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors (or numpy arrays) on `device`. Features keep their dtype (float16 as cached: the heads widen them
    level by level, so the whole batch is never held twice); other floating arrays become float32."""
    moved = {}
    for name, value in batch.items():
        tensor = torch.from_numpy(np.asarray(value)) if isinstance(value, np.ndarray) else value
        if not isinstance(tensor, torch.Tensor):
            continue
        widen = tensor.is_floating_point() and not name.startswith(FEATURE_PREFIX)
        moved[name] = tensor.to(device=device, dtype=torch.float32 if widen else None)
    return moved


@torch.no_grad()
def member_probabilities(run: Run, batch: Mapping[str, Any]) -> torch.Tensor:
    """Every member's vessel probability.

    Parameters
    ----------
    batch : mapping of name to (B, ...) tensor or array
        "features/<block>": (B, timestep, band, channel, y, x), every block and timestep as cached (a run trained
        on part of them takes its part here); "image": (B, rgb, y, x) in [0, 1].

    With `run.flips`, each member's probability is its mean over the eight flips and rotations of the canvas,
    features moved exactly as training's `--flips` moves them.

    Returns
    -------
    (member, B, y, x) float32 tensor on the run's device
    """
    cached_timesteps = run.record.extraction_config["timesteps"]
    inputs = batch_to_device(select_features(batch, cached_timesteps, run.spec, timestep_dim=1), run.device)
    symmetries = SYMMETRIES if run.flips else SYMMETRIES[:1]
    total = None
    for symmetry in symmetries:
        moved = apply_symmetry(inputs, run.spec, symmetry) if any(symmetry) else inputs
        probs = torch.stack([
            torch.softmax(tiled_logits(head, moved, run.spec, side=run.tile, context=run.tile_context), dim=1)[:, 1]
            for head in run.heads])
        probs = undo_symmetry(probs, symmetry)
        total = probs if total is None else total + probs
    return total / len(symmetries)


def predict_probabilities(run: Run, batch: Mapping[str, Any]) -> torch.Tensor:
    """The ensemble's prediction: mean vessel probability over members.

    Parameters
    ----------
    batch : mapping of name to (B, ...) tensor or array (see `member_probabilities`)

    Returns
    -------
    (B, y, x) float32 tensor on the run's device
    """
    return member_probabilities(run, batch).mean(dim=0)


def image_prediction(run: Run, batch: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One image's ensemble prediction as numpy: mean vessel probability and fraction of members voting vessel.

    Parameters
    ----------
    batch : mapping of name to (1, ...) tensor or array (see `member_probabilities`)

    Returns
    -------
    prob, votes : (y, x) float32 arrays
    """
    members = member_probabilities(run, batch)[:, 0]
    if run.per_image_threshold:
        fov = np.asarray(batch["fov"][0], dtype=bool) if "fov" in batch else None
        thresholds = torch.tensor([otsu_threshold(member.cpu().numpy(), fov) for member in members])
    else:
        thresholds = torch.tensor(run.thresholds or (DEFAULT_THRESHOLD,) * len(run.heads))
    votes = vote_fraction(members, thresholds.to(members.device)[:, None, None])
    return members.mean(dim=0).cpu().numpy(), votes.cpu().numpy()


def otsu_threshold(prob: np.ndarray, fov: np.ndarray | None = None) -> float:
    """Otsu's threshold of one probability map inside `fov` (everywhere when None): a decision threshold that
    adapts to each image of an unseen camera without reading its labels. 0.5 for a map with a single value."""
    values = prob[fov] if fov is not None else prob.ravel()
    if values.size == 0 or values.min() == values.max():
        return DEFAULT_THRESHOLD
    return float(threshold_otsu(values))


def vote_fraction(member_probs: torch.Tensor, threshold: float | torch.Tensor = DEFAULT_THRESHOLD) -> torch.Tensor:
    """Fraction of members that call each pixel a vessel; the majority-vote mask is `vote_fraction > 0.5`.

    Parameters
    ----------
    member_probs : (member, ...) tensor
    threshold : float, or a tensor broadcast against `member_probs` (one threshold per member)

    Returns
    -------
    (...) float32 tensor in [0, 1]
    """
    return (member_probs > threshold).float().mean(dim=0)


def majority_vote(member_probs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-pixel majority vote of the members (a tie is background), as the release combines its ten heads.

    Parameters
    ----------
    member_probs : (member, ...) tensor

    Returns
    -------
    (...) bool tensor
    """
    return vote_fraction(member_probs, threshold) > 0.5
