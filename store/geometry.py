"""Where a native image sits on the square canvas, so canvas predictions map back to native pixels.

numpy only: evaluation maps predictions back without importing torch or re-reading the raw images.
Path: native image -> crop to the FOV box -> resize keeping aspect (longer side = fill x canvas, fill 1 by default)
-> centre and pad to the square.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Geometry:
    """Native image <-> canvas mapping (all sizes in pixels).

    Attributes
    ----------
    native_height, native_width : int
        Shape of the native image.
    crop_top, crop_left, crop_height, crop_width : int
        The crop box in native pixels (the FOV's bounding box, or the whole image).
    scaled_height, scaled_width : int
        Size of the crop once resized onto the canvas.
    pad_top, pad_left : int
        Offset of the resized crop inside the canvas.
    canvas_size : int
        Side of the square canvas.
    """

    native_height: int
    native_width: int
    crop_top: int
    crop_left: int
    crop_height: int
    crop_width: int
    scaled_height: int
    scaled_width: int
    pad_top: int
    pad_left: int
    canvas_size: int

    @classmethod
    def fit(
        cls,
        native_shape: tuple[int, int],
        crop_box: tuple[int, int, int, int],
        canvas_size: int,
        fill: float = 1.0,
    ) -> Geometry:
        """Centre the crop box (top, left, height, width) on the canvas, longer side = ``fill * canvas_size``.

        ``fill`` (0 < fill <= 1) below 1 leaves a margin, so cameras with narrower fields come out smaller and every
        camera gets the same pixels per degree (``ExtractionConfig.canvas_field_deg``).
        """
        if not 0 < fill <= 1:
            raise ValueError(f"fill {fill}: the crop box takes a share 0 < fill <= 1 of the canvas side")
        top, left, height, width = crop_box
        scale = canvas_size * fill / max(height, width)
        scaled_height = min(canvas_size, max(1, round(height * scale)))
        scaled_width = min(canvas_size, max(1, round(width * scale)))
        return cls(
            native_height=native_shape[0],
            native_width=native_shape[1],
            crop_top=top,
            crop_left=left,
            crop_height=height,
            crop_width=width,
            scaled_height=scaled_height,
            scaled_width=scaled_width,
            pad_top=(canvas_size - scaled_height) // 2,
            pad_left=(canvas_size - scaled_width) // 2,
            canvas_size=canvas_size,
        )

    @property
    def native_shape(self) -> tuple[int, int]:
        """(native_y, native_x)."""
        return self.native_height, self.native_width

    def to_array(self) -> np.ndarray:
        """The fields in declaration order as an int64 vector (the store's "geometry" array)."""
        return np.array(astuple(self), dtype=np.int64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> Geometry:
        """Inverse of :meth:`to_array`."""
        names = [field.name for field in fields(cls)]
        if np.shape(values) != (len(names),):
            raise ValueError(f"a geometry vector has {len(names)} values, got shape {np.shape(values)}")
        return cls(**{name: int(value) for name, value in zip(names, values, strict=True)})

    def to_native(self, canvas_map: np.ndarray) -> np.ndarray:
        """Map a canvas map back to native pixels: bilinear inside the crop box, zeros (False) outside.

        Parameters
        ----------
        canvas_map : np.ndarray
            (canvas_y, canvas_x); float (e.g. probabilities) or bool (then thresholded at 0.5 after interpolation).

        Returns
        -------
        np.ndarray
            (native_y, native_x): float32 for float input, bool for bool input.
        """
        if canvas_map.shape != (self.canvas_size, self.canvas_size):
            raise ValueError(f"canvas map has shape {canvas_map.shape}, expected {(self.canvas_size,) * 2}")
        region = canvas_map[
            self.pad_top : self.pad_top + self.scaled_height, self.pad_left : self.pad_left + self.scaled_width
        ].astype(np.float32)
        resized = resize_bilinear(region, (self.crop_height, self.crop_width))
        native = np.zeros(self.native_shape, dtype=np.float32)
        native[
            self.crop_top : self.crop_top + self.crop_height, self.crop_left : self.crop_left + self.crop_width
        ] = resized
        return native >= 0.5 if canvas_map.dtype == bool else native


def resize_bilinear(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (y, x) to ``shape`` with pixel-centre alignment (align_corners=False), no antialiasing."""
    rows = _interpolation(values.shape[0], shape[0])
    cols = _interpolation(values.shape[1], shape[1])
    along_y = values[rows[0]] * rows[2][:, None] + values[rows[1]] * (1 - rows[2])[:, None]
    return along_y[:, cols[0]] * cols[2] + along_y[:, cols[1]] * (1 - cols[2])


def _interpolation(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and weight of the lower index for each output pixel centre."""
    centres = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    lower = np.floor(centres).astype(np.int64)
    upper = np.minimum(lower + 1, size_in - 1)
    return lower, upper, (1 - (centres - lower)).astype(np.float32)
