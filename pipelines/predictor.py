"""A trained run as an in-memory segmenter, for notebooks: ``dgss.load_run(RUN).predict(photo)``.

It is `dgss predict` without the files: the same backbone check, canvas mapping and heads
(`dgss.pipelines.predict.segment_image`), with the backbone loaded once for every photo it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgss.aggregate.run import DEFAULT_TILE, DEFAULT_TILE_CONTEXT, Run
from dgss.aggregate.run import load_run as load_heads
from dgss.aggregate.settings import InferenceSettings
from dgss.datasets import derive_fov, read_image
from dgss.errors import DgssError
from dgss.extract.extractor import FeatureExtractor, canvas_fill
from dgss.pipelines.predict import run_extractor, segment_image


@dataclass(frozen=True)
class RunPredictor:
    """A run's heads (`run`) and the backbone its features came from (`extractor`)."""

    run: Run
    extractor: FeatureExtractor

    def predict(self, image: np.ndarray | str | Path, fov: np.ndarray | None = None, *,
                field_of_view_deg: float = 45.0) -> np.ndarray:
        """The vessel probability of one fundus photo at its own size.

        Parameters
        ----------
        image : (y, x, rgb) uint8 array, or the path of an image file
        fov : (y, x) bool, optional
            The field of view; derived from the photo when not given.
        field_of_view_deg : the camera's field angle (matters when the run's cache spans one, `canvas_field_deg`)

        Returns
        -------
        (y, x) float32 in [0, 1], 0 outside the field of view
        """
        name = str(image) if isinstance(image, (str, Path)) else "image"
        pixels = read_image(Path(image)) if isinstance(image, (str, Path)) else np.asarray(image)
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise DgssError(f"{name}: expected a (y, x, 3) uint8 RGB photo, got {pixels.dtype} {pixels.shape}")
        mask = derive_fov(pixels) if fov is None else np.asarray(fov, dtype=bool)
        if mask.shape != pixels.shape[:2]:
            raise DgssError(f"fov is {mask.shape} but {name} is {pixels.shape[:2]}: give a mask of the photo's size")
        fill = canvas_fill(self.extractor.config.canvas_field_deg, field_of_view_deg)
        probability, _ = segment_image(pixels, mask, self.run, self.extractor, fill, name=name)
        return probability


def load_run(run_dir: str | Path, *, model: str | None = None, device: str = "cpu", tile: int | None = DEFAULT_TILE,
             tile_context: int = DEFAULT_TILE_CONTEXT, threshold: float | str | None = None,
             flips: bool | None = InferenceSettings.tta.default) -> RunPredictor:
    """Load a `dgss fit-head` run folder and its backbone (`model`, else the one the run records, else the shipped
    one; refused unless it is the backbone the run was trained on), ready to `predict` photos. `flips`: test-time
    flips, as `dgss predict --tta` (None, the default: on where the run was trained with flips)."""
    run = load_heads(run_dir, device, tile=tile, tile_context=tile_context, threshold=threshold, flips=flips)
    return RunPredictor(run, run_extractor(run, run_dir, model, device))
