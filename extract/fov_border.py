"""Continue the fundus past its field of view, so that the FOV's border makes no edge.

A fundus photo's FOV ends in a step to black. Networks read that step as a strong, curved, dark-to-bright edge,
which is what a vessel looks like. Heads trained on one camera learn to ignore the border where it has that camera's
shape (DRIVE's is round); a camera whose FOV is cut flat at the top and bottom, or notched, shows edges they never
saw, and a false vessel gets drawn along them. Filling every pixel outside the FOV from the nearest FOV pixels, then
smoothing the fill, continues the fundus's local brightness outwards: the border is no longer an edge, whatever its
shape. The FOV's own pixels are never changed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SMOOTHING_PX = 6.0
"""Gaussian sigma of the fill outside the FOV (canvas pixels): wide enough that vessels reaching the border are not
continued outwards as streaks, narrow enough that the fill follows the fundus's brightness along the border."""


def extend_fov(image: np.ndarray, fov: np.ndarray, smoothing: float = SMOOTHING_PX) -> np.ndarray:
    """`image` with every pixel outside `fov` set from the nearest FOV pixel, smoothed.

    Parameters
    ----------
    image : (y, x, channel) uint8 or float array
    fov : (y, x) bool

    Returns
    -------
    array like `image`: equal to it inside `fov`; an image with no FOV pixel, or no pixel outside, is returned as is
    """
    if fov.all() or not fov.any():
        return image
    _, (rows, cols) = ndimage.distance_transform_edt(~fov, return_indices=True)
    nearest = image[rows, cols].astype(np.float32)
    smooth = ndimage.gaussian_filter(nearest, sigma=(smoothing, smoothing, 0)[: image.ndim])
    filled = np.where(fov[..., None] if image.ndim == 3 else fov, image, smooth)
    if np.issubdtype(image.dtype, np.integer):
        filled = np.clip(np.rint(filled), np.iinfo(image.dtype).min, np.iinfo(image.dtype).max)
    return filled.astype(image.dtype)
