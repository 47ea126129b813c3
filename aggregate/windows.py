"""Windows of the canvas: random ones to train a head on, overlapping tiles to apply it to a whole canvas.

A head's cost and memory grow with the area it sees, and the vessels it has to learn are local: training on
random windows of the cached canvas (features, labels and FOV cut alike, each feature map at its own stride)
bounds the cost of a step whatever the canvas size. Applying the head tile by tile bounds the memory of
evaluation and prediction the same way.

Every head here is fully convolutional and, in eval mode, a function of a bounded neighbourhood of each pixel
(its receptive field). A tile that carries ``context`` pixels of margin on every side inside the canvas, of which
only the centre is kept, therefore gives the same logits there as the whole canvas at once, once ``context``
reaches the receptive field (tested); tiles whose kept centres overlap are averaged. Windows and tiles start on
multiples of the coarsest cached stride so that every level's map is cut at whole pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dgss.aggregate.spec import CacheSpec

INSIDE_FOV = 0.9
"""Share of training windows centred on a random FOV pixel; the rest are drawn anywhere on the canvas, so that the
head also sees the FOV border and the padding it has to call background."""


@dataclass(frozen=True)
class Window:
    """A square window of the canvas in canvas pixels: rows ``top:top+side``, columns ``left:left+side``."""

    top: int
    left: int
    side: int


def strides(spec: CacheSpec) -> dict[str, int]:
    """Canvas pixels per map pixel of every batch entry that has a map (features per block; 1 for canvas arrays)."""
    return {spec.feature_key(block): spec.stride(block) for block in spec.blocks}


def crop(arrays: Mapping[str, Tensor], spec: CacheSpec, window: Window) -> dict[str, Tensor]:
    """Cut ``window`` out of every array whose last two dims are a map (features at their stride, the rest at 1).

    Works on one item (no batch dim) and on a batch alike; the views share memory with ``arrays``.
    """
    per_key = strides(spec)
    cropped = {}
    for name, array in arrays.items():
        stride = per_key.get(name, 1)
        top, left, side = window.top // stride, window.left // stride, window.side // stride
        cropped[name] = array[..., top:top + side, left:left + side]
    return cropped


def window_side(spec: CacheSpec, side: int | None) -> int:
    """The side actually used for a requested ``side``: the whole canvas for None or anything at least as large,
    else ``side`` rounded down to a multiple of the coarsest stride (and at least one such multiple)."""
    multiple = spec.window_multiple
    if side is None or side >= spec.canvas_size:
        return spec.canvas_size
    return max(multiple, side // multiple * multiple)


def sample_windows(fov: np.ndarray, spec: CacheSpec, side: int, count: int,
                   rng: np.random.Generator) -> list[Window]:
    """``count`` random windows of ``side`` canvas pixels, most of them centred on a random pixel of ``fov``.

    Parameters
    ----------
    fov : (canvas_y, canvas_x) bool
    """
    side = window_side(spec, side)
    canvas, multiple = spec.canvas_size, spec.window_multiple
    inside = np.argwhere(fov)
    windows = []
    for _ in range(count):
        if len(inside) and rng.random() < INSIDE_FOV:
            centre_y, centre_x = inside[rng.integers(len(inside))]
        else:
            centre_y, centre_x = rng.integers(canvas, size=2)
        top, left = (int(np.clip(c - side // 2, 0, canvas - side)) // multiple * multiple
                     for c in (centre_y, centre_x))
        windows.append(Window(top, left, side))
    return windows


def tile_origins(canvas: int, side: int, context: int) -> list[int]:
    """Origins along one axis of tiles of ``side`` whose centres (``context`` in from each inner edge) cover
    ``canvas``: steps of ``side - 2 * context``, the last tile flush with the canvas end."""
    if side >= canvas:
        return [0]
    step = side - 2 * context
    origins = list(range(0, canvas - side, step))
    return [*origins, canvas - side]


def tiled_logits(head: Callable[[dict[str, Tensor]], Tensor], batch: Mapping[str, Tensor], spec: CacheSpec, *,
                 side: int | None, context: int) -> Tensor:
    """The head's logits over the whole canvas, computed tile by tile (see the module docstring).

    Parameters
    ----------
    batch : mapping of name to (B, ...) tensor over the whole canvas
    side
        Tile side in canvas pixels (None or >= canvas: the whole canvas in one call).
    context
        Margin in canvas pixels dropped from each tile edge that lies inside the canvas; rounded up to a multiple
        of the coarsest stride, and capped so that every tile keeps a centre of at least one such multiple.

    Returns
    -------
    (B, 2, canvas, canvas) tensor
    """
    canvas, multiple = spec.canvas_size, spec.window_multiple
    side = window_side(spec, side)
    if side >= canvas:
        return head(dict(batch))
    context = min(-(-context // multiple) * multiple, (side - multiple) // 2 // multiple * multiple)
    origins = tile_origins(canvas, side, context)
    total = weight = None
    for top in origins:
        for left in origins:
            logits = head(crop(batch, spec, Window(top, left, side)))
            keep = torch.zeros(side, side, dtype=logits.dtype, device=logits.device)
            rows = slice(0 if top == 0 else context, side if top + side == canvas else side - context)
            cols = slice(0 if left == 0 else context, side if left + side == canvas else side - context)
            keep[rows, cols] = 1
            if total is None:
                total = logits.new_zeros(*logits.shape[:2], canvas, canvas)
                weight = logits.new_zeros(canvas, canvas)
            total[..., top:top + side, left:left + side] += logits * keep
            weight[top:top + side, left:left + side] += keep
    return total / weight
