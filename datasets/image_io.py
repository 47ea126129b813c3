"""Reading the image formats retinal datasets ship in, so that a bad file fails loudly with its path.

Pillow reads GIF, TIFF, PPM/PGM, JPEG and PNG; tifffile takes over for TIFFs Pillow cannot decode; ``.gz`` files
(STARE's official download) are decompressed on the fly. Every image is fully decoded (``Image.load``), so a
truncated file raises instead of coming back half grey; ``LOAD_TRUNCATED_IMAGES`` is never set.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from dgss.errors import DatasetError

PIXEL_LIMIT_VARIABLE = "DGSS_MAX_IMAGE_PIXELS"
"""Environment variable that raises Pillow's decompression-bomb pixel limit, for trusted very large photos."""
if os.environ.get(PIXEL_LIMIT_VARIABLE, "").isdigit():
    Image.MAX_IMAGE_PIXELS = int(os.environ[PIXEL_LIMIT_VARIABLE])

IMAGE_SUFFIXES = frozenset({".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".jpg", ".jpeg", ".png", ".bmp"})
_TIFF_SUFFIXES = frozenset({".tif", ".tiff"})


def file_stem(path: Path) -> str:
    """File name without its image extension and without a trailing ``.gz`` (``im0001.ah.ppm.gz`` -> ``im0001.ah``)."""
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return Path(name).stem


def is_image_file(path: Path) -> bool:
    """Whether a directory entry is a (possibly gzipped) image file this module reads; hidden files are not."""
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return path.is_file() and not path.name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> np.ndarray:
    """Read any supported image file as RGB.

    Parameters
    ----------
    path : str or Path
        A GIF, TIFF, PPM/PGM, JPEG or PNG file, optionally gzipped (``.gz``).

    Returns
    -------
    np.ndarray
        ``(y, x, 3)`` uint8. Grey images are repeated over the three channels, alpha is dropped, 16-bit data is
        scaled to 8 bits.
    """
    array = _read_array(Path(path))
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise DatasetError(f"cannot use {path}: pixel type {array.dtype}, expected 8- or 16-bit integers")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] >= 3:
        return np.ascontiguousarray(array[:, :, :3])
    raise DatasetError(f"cannot use {path}: array shape {array.shape}, expected a grey or RGB image")


def read_mask(path: str | Path) -> np.ndarray:
    """Read a label or FOV mask: a pixel is set when its value (palette index, grey level, any colour) is > 0.

    Returns
    -------
    np.ndarray
        ``(y, x)`` bool.
    """
    array = _read_array(Path(path))
    if array.ndim == 3:
        array = array[:, :, :3].max(axis=2)
    if array.ndim != 2:
        raise DatasetError(f"cannot use {path} as a mask: array shape {array.shape}")
    return array > 0


def read_size(path: str | Path) -> tuple[int, int]:
    """Native ``(height, width)`` of an image from its header, without decoding the pixels."""
    path = Path(path)
    try:
        with _open(path) as stream, Image.open(stream) as image:
            width, height = image.size
            return height, width
    except Image.DecompressionBombError as error:
        raise _too_large(path, error) from None
    except (OSError, EOFError) as pil_error:
        if path.suffix.lower() not in _TIFF_SUFFIXES:
            raise DatasetError(f"cannot read {path}: {pil_error}") from pil_error
        try:
            with tifffile.TiffFile(path) as tiff:
                shape = tiff.pages[0].shape
        except (ValueError, OSError) as tiff_error:
            raise DatasetError(f"cannot read {path}: {pil_error}; tifffile: {tiff_error}") from tiff_error
        return int(shape[0]), int(shape[1])


def _read_array(path: Path) -> np.ndarray:
    """Decode the whole file (Pillow, then tifffile for TIFFs Pillow cannot decode); DatasetError naming it."""
    try:
        with _open(path) as stream, Image.open(stream) as image:
            image.load()
            return np.array(image)
    except Image.DecompressionBombError as error:
        raise _too_large(path, error) from None
    except (OSError, EOFError) as pil_error:
        if path.suffix.lower() not in _TIFF_SUFFIXES:
            raise DatasetError(f"cannot read {path}: {pil_error}") from pil_error
        try:
            return tifffile.imread(path)
        except (ValueError, OSError) as tiff_error:
            raise DatasetError(f"cannot read {path}: {pil_error}; tifffile: {tiff_error}") from tiff_error


def _too_large(path: Path, error: Image.DecompressionBombError) -> DatasetError:
    """Pillow refuses images over twice its pixel limit as possible decompression bombs: say how to get past it."""
    return DatasetError(
        f"cannot read {path}: {error}; resize it (retinal photos rarely need over {Image.MAX_IMAGE_PIXELS} pixels), "
        f"or if you trust the file set {PIXEL_LIMIT_VARIABLE} to a larger pixel count"
    )


def _open(path: Path) -> io.BufferedIOBase:
    """A binary stream of the file's image bytes, decompressing ``.gz`` on the fly (truncation raises EOFError)."""
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")
