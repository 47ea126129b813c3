"""Put a native image on the square canvas, and cover a large canvas with overlapping model-input tiles.

Every image of a dataset lands on the same canvas (FOV crop, aspect kept, padding), so every image of a store entry
has the same array shapes whatever its native size; :class:`~dgss.store.geometry.Geometry` maps results back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from dgss.errors import DatasetError
from dgss.store.geometry import Geometry


@dataclass(frozen=True)
class CanvasImage:
    """An image and its masks on the canvas.

    Attributes
    ----------
    image : np.ndarray
        (canvas_y, canvas_x, rgb) uint8, zeros in the padding.
    vessel, fov : np.ndarray
        (canvas_y, canvas_x) bool.
    geometry : Geometry
        How to go back to native pixels.
    """

    image: np.ndarray
    vessel: np.ndarray
    fov: np.ndarray
    geometry: Geometry


def fov_box(fov: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (top, left, height, width) of a (y, x) bool FOV mask; the whole image if the mask is empty."""
    rows = np.flatnonzero(fov.any(axis=1))
    cols = np.flatnonzero(fov.any(axis=0))
    if rows.size == 0:
        return 0, 0, fov.shape[0], fov.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


MAX_UPSCALE = 8
"""How many times a photo's field of view may be enlarged to fill the canvas: a smaller photo holds too few pixels to
show a vessel (a 1x1 photo would be segmented as a flat disc)."""


def check_fundus_photo(image: np.ndarray, fov: np.ndarray, canvas_size: int, name: str) -> None:
    """Refuse, naming the photo, one that cannot be a fundus photo at all: one colour everywhere (a blank or black
    frame), no field of view, or a field of view too small for the canvas (more than MAX_UPSCALE times enlarged).

    Raises
    ------
    DatasetError
        The photo and why, with the smallest field-of-view side this canvas takes.
    """
    if image.size == 0 or image.min() == image.max():
        raise DatasetError(f"{name} is one colour everywhere ({image.shape[1]}x{image.shape[0]} px): not a fundus "
                           "photo; leave it out")
    if not fov.any():
        raise DatasetError(f"{name} has no field of view (no bright retina on a dark border): not a fundus photo, or "
                           "give its FOV mask")
    _, _, height, width = fov_box(fov)
    smallest = math.ceil(canvas_size / MAX_UPSCALE)
    if min(height, width) < smallest:
        raise DatasetError(f"{name}: its field of view is {width}x{height} px, too small for the {canvas_size} px "
                           f"canvas (at least {smallest} px a side): use the photo at its full resolution")


def to_canvas(
    image: np.ndarray,
    vessel: np.ndarray,
    fov: np.ndarray,
    *,
    canvas_size: int,
    fov_crop: bool = True,
    fill: float = 1.0,
) -> CanvasImage:
    """Crop to the FOV box (or not), resize keeping aspect (longer side = ``fill * canvas_size``), centre, pad.

    The image is resized with Pillow's antialiased bilinear filter; masks by area (box filter), a canvas pixel is
    set where more than half of it was set, so masks stay sharp and thin vessels are not smeared.

    Parameters
    ----------
    image : np.ndarray
        (y, x, rgb) uint8.
    vessel, fov : np.ndarray
        (y, x) bool.
    fill : float
        Share of the canvas side the box's longer side takes (``dgss.extract.extractor.canvas_fill``): below 1 for
        cameras with a narrower field than the canvas spans.
    """
    box = fov_box(fov) if fov_crop else (0, 0, image.shape[0], image.shape[1])
    geometry = Geometry.fit(image.shape[:2], box, canvas_size, fill)
    return CanvasImage(
        image=_place(_resize_image(_crop(image, geometry), geometry), geometry),
        vessel=_place(_resize_mask(_crop(vessel, geometry), geometry), geometry),
        fov=_place(_resize_mask(_crop(fov, geometry), geometry), geometry),
        geometry=geometry,
    )


def _crop(values: np.ndarray, geometry: Geometry) -> np.ndarray:
    return values[
        geometry.crop_top : geometry.crop_top + geometry.crop_height,
        geometry.crop_left : geometry.crop_left + geometry.crop_width,
    ]


def _resize_image(image: np.ndarray, geometry: Geometry) -> np.ndarray:
    size = (geometry.scaled_width, geometry.scaled_height)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.BILINEAR))


def _resize_mask(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    size = (geometry.scaled_width, geometry.scaled_height)
    area = Image.fromarray(mask.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX)
    return np.asarray(area) > 0.5


def _place(values: np.ndarray, geometry: Geometry) -> np.ndarray:
    canvas = np.zeros((geometry.canvas_size, geometry.canvas_size, *values.shape[2:]), dtype=values.dtype)
    canvas[
        geometry.pad_top : geometry.pad_top + geometry.scaled_height,
        geometry.pad_left : geometry.pad_left + geometry.scaled_width,
    ] = values
    return canvas


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(y, x, rgb) uint8 -> (1, rgb, y, x) float32 in [-1, 1], the diffusion models' input range."""
    tensor = torch.from_numpy(np.array(image))  # a copy: arrays from PIL are read-only
    return tensor.permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1


def tile_starts(canvas_size: int, input_size: int, overlap: int, stride: int) -> list[int]:
    """Start offsets (pixels, multiples of ``stride``) of tiles of ``input_size`` covering ``canvas_size``.

    The fewest tiles that keep neighbours overlapping by about ``overlap`` pixels, spread evenly; the first starts
    at 0 and the last ends at the canvas edge. One tile (start 0) when the canvas is the input size.
    """
    if canvas_size <= input_size:
        return [0]
    count = math.ceil((canvas_size - overlap) / (input_size - overlap))
    spread = np.linspace(0, canvas_size - input_size, count) / stride
    return sorted({int(round(start)) * stride for start in spread})


def tile_ramp(length: int, overlap: int) -> torch.Tensor:
    """(length,) blend weights of a tile edge: a linear ramp over ``overlap`` map pixels at each end, 1 inside.

    Weights stay positive, so a pixel covered by one tile only keeps its value after normalisation.
    """
    distance = torch.minimum(torch.arange(length), torch.arange(length).flip(0)).float() + 0.5
    return (distance / max(overlap, 1)).clamp(max=1.0)


def stitch_tiles(
    tiles: torch.Tensor, starts: list[int], *, canvas_map_size: int, stride: int, overlap: int
) -> torch.Tensor:
    """Blend per-tile block maps into one canvas-level map, weighting overlaps with :func:`tile_ramp`.

    Parameters
    ----------
    tiles : torch.Tensor
        (tile, ..., y, x) with tiles in row-major order over ``starts`` x ``starts`` (pixel offsets).
    canvas_map_size : int
        Side of the stitched map (canvas size / stride).
    stride : int
        Input pixels per map pixel for this block.
    overlap : int
        Tile overlap in input pixels.

    Returns
    -------
    torch.Tensor
        (..., canvas_map_size, canvas_map_size).
    """
    size = tiles.shape[-1]
    ramp = tile_ramp(size, overlap // stride)
    weight = ramp[:, None] * ramp[None, :]
    total = tiles.new_zeros(*tiles.shape[1:-2], canvas_map_size, canvas_map_size)
    weights = tiles.new_zeros(canvas_map_size, canvas_map_size)
    positions = [(top // stride, left // stride) for top in starts for left in starts]
    for tile, (top, left) in zip(tiles, positions, strict=True):
        total[..., top : top + size, left : left + size] += tile * weight
        weights[top : top + size, left : left + size] += weight
    return total / weights


def cut_tiles(image: torch.Tensor, starts: list[int], input_size: int) -> torch.Tensor:
    """(1, rgb, canvas_y, canvas_x) -> (tile, rgb, input_size, input_size), row-major over ``starts`` x ``starts``."""
    return torch.cat(
        [image[..., top : top + input_size, left : left + input_size] for top in starts for left in starts]
    )
