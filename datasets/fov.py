"""Field-of-view masks for images whose dataset publishes none (STARE, CHASE_DB1, FIVES, folders without fov/).

The FOV of a fundus photograph is the bright disc the camera sees; outside it the sensor records black plus JPEG
noise, and some cameras (STARE) a dim band with red values of 10-25 along the rim. The red channel separates the
two best because the retina reflects red strongly even where green and blue are dark. Recipe:

1. threshold the 5x5 median of the red channel (``> threshold``; the threshold is a property of each dataset's
   camera, see the readers), so isolated noisy pixels neither open holes nor make islands. The median of 25 values
   exceeds the threshold exactly when at least 13 of them do, so it is computed as a majority vote over the
   thresholded neighbourhood (a box filter), several times faster than a median filter;
2. keep the largest connected component (drops text labels and specks outside the disc);
3. fill its holes (dark lesions, the fovea or wide vessels inside the disc stay in the FOV);
4. erode by 2 px so the blurred rim, where the threshold is least sure, is left out.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULT_FOV_THRESHOLD = 20
_MEDIAN_SIZE = 5
_ERODE_PX = 2


def derive_fov(image: np.ndarray, threshold: int = DEFAULT_FOV_THRESHOLD) -> np.ndarray:
    """Derive a field-of-view mask from a fundus image.

    Parameters
    ----------
    image : np.ndarray
        ``(y, x, 3)`` uint8 RGB.
    threshold : int
        Red values above it (after a 5x5 median) count as inside the FOV; pick it above the camera's border
        (STARE's rim band reaches 25).

    Returns
    -------
    np.ndarray
        ``(y, x)`` bool; all False when no pixel is above the threshold.
    """
    above = (image[:, :, 0] > threshold).astype(np.float32)
    votes = ndimage.uniform_filter(above, size=_MEDIAN_SIZE, mode="nearest") * _MEDIAN_SIZE**2
    labels, count = ndimage.label(votes > _MEDIAN_SIZE**2 / 2)
    if count == 0:
        return np.zeros(above.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    disc = ndimage.binary_fill_holes(labels == sizes.argmax())
    return ndimage.binary_erosion(disc, iterations=_ERODE_PX, border_value=1)
