"""One image in, the arrays of one store entry out: the API the extraction job runs per image.

The extractor owns no store: it says which arrays an entry has (:meth:`FeatureExtractor.entry_arrays`, coords,
attrs) and computes one image's arrays; the job writes them. Same image, same config -> identical bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING

import diffusers
import numpy as np
import torch

from dgss.backbone.appearance import POOL, AppearanceTarget, chosen_appearance, match_appearance
from dgss.backbone.loading import Backbone
from dgss.errors import ModelError
from dgss.extract.bands import split_bands
from dgss.extract.blocks import check_blocks, default_blocks, group_levels, list_blocks, select_blocks
from dgss.extract.config import ExtractionConfig, check_field_angle, check_timesteps, default_timesteps
from dgss.extract.fov_border import extend_fov
from dgss.extract.features import DEFAULT_INVERSION_STEPS, extract_features
from dgss.extract.precision import round_mantissa
from dgss.extract.preprocess import (check_fundus_photo, cut_tiles, image_tensor, stitch_tiles, tile_starts,
                                     to_canvas)
from dgss.extract.settings import ExtractionSettings, OutsideFov
from dgss.store import ArraySpec
from dgss.store.geometry import Geometry
from dgss.store.schema import BlockLayout, EntryLayout, band_names, banded_size, feature_array, halves_maps

if TYPE_CHECKING:
    from dgss.datasets import Sample


def make_config(
    backbone: Backbone,
    *,
    blocks: Sequence[str] | None = None,
    timesteps: Sequence[int] | None = None,
    mode: str = ExtractionSettings.mode.default,
    draws: int = ExtractionSettings.draws.default,
    seed: int = ExtractionSettings.seed.default,
    inversion_steps: int | None = ExtractionSettings.inversion_steps.default,
    bands: str = ExtractionSettings.bands.default,
    input_size: int | None = ExtractionSettings.input_size.default,
    canvas_size: int | None = ExtractionSettings.canvas_size.default,
    tile_overlap: int = ExtractionSettings.tile_overlap.default,
    mantissa_bits: int = ExtractionSettings.mantissa_bits.default,
    appearance: str = POOL,
    fov_crop: bool = True,
    canvas_field_deg: float | None = ExtractionSettings.canvas_field_deg.default,
    outside_fov: str = ExtractionSettings.outside_fov.default,
) -> ExtractionConfig:
    """A complete, validated config: defaults filled in from the backbone, everything checked against it.

    Defaults: ``input_size`` = the model's sample size, ``canvas_size`` = ``input_size`` (no tiling), blocks =
    :func:`~dgss.extract.blocks.default_blocks`, timesteps = :func:`~dgss.extract.config.default_timesteps`.
    ``tile_overlap`` is set to 0 when the canvas is not tiled, so it does not change the key. ``canvas_field_deg``:
    the field angle the canvas side spans (see :class:`~dgss.extract.config.ExtractionConfig`); None fills it.
    ``inversion_steps`` (mode ddim): the fine inversion path, ``DEFAULT_INVERSION_STEPS`` when None.
    ``appearance``: the colour target images are matched to (`chosen_appearance`: "pool", "none" or a file); the
    config records the target's values, so the key changes only where the numbers do.
    """
    size = input_size or backbone.sample_size
    if size is None:
        raise ModelError(f"model {backbone.name} does not say its sample size; pass an input size")
    canvas = canvas_size or size
    chosen = list(blocks) if blocks is not None else default_blocks(list_blocks(backbone, size), size)
    check_blocks(backbone, chosen)
    steps = timesteps if timesteps is not None else default_timesteps(backbone.num_train_timesteps)
    return ExtractionConfig(
        model_digest=backbone.digest,
        blocks=tuple(chosen),
        timesteps=check_timesteps(steps, backbone.num_train_timesteps),
        mode=mode,
        draws=draws,
        seed=seed,
        inversion_steps=_inversion_steps(mode, inversion_steps, backbone.num_train_timesteps),
        bands=bands,
        input_size=size,
        canvas_size=canvas,
        tile_overlap=tile_overlap if canvas > size else 0,
        appearance=_as_dict(chosen_appearance(appearance, backbone.appearance, backbone.name)),
        mantissa_bits=mantissa_bits,
        fov_crop=fov_crop,
        canvas_field_deg=canvas_field_deg,
        outside_fov=outside_fov,
    )


def _as_dict(target: AppearanceTarget | None) -> dict[str, list[float]] | None:
    return None if target is None else target.to_dict()


def _inversion_steps(mode: str, steps: int | None, num_train_timesteps: int) -> int | None:
    """``steps`` for mode ddim (``DEFAULT_INVERSION_STEPS`` when None), checked against T; as given otherwise (the
    config refuses any: the other modes keep their keys)."""
    if mode != "ddim":
        return steps
    steps = DEFAULT_INVERSION_STEPS if steps is None else steps
    if steps > num_train_timesteps:
        raise ModelError(f"inversion steps {steps}: use 1..{num_train_timesteps} (the model's T)")
    return steps


def canvas_fill(config_field_deg: float | None, image_field_deg: float | None) -> float:
    """Share of the canvas side an image's FOV box takes: its field angle over the canvas's, at most 1.

    A narrower camera magnifies the retina, so at equal FOV size in pixels its vessels come out wider;
    scaling each FOV by its field angle gives every camera the same pixels per degree. A camera wider than the
    canvas is fitted to it rather than cropped. 1 when the config spans no field angle (every FOV fills the canvas).
    """
    if config_field_deg is None:
        return 1.0
    if image_field_deg is None:
        raise ModelError(
            f"the config's canvas spans {config_field_deg:g} deg, so each image needs its camera's field angle: "
            "pass field_of_view_deg (a dataset reader's field_of_view_deg)"
        )
    return min(1.0, check_field_angle(image_field_deg, "image field angle") / config_field_deg)


class FeatureExtractor:
    """Computes the per-image arrays of one store entry for a backbone and an :class:`ExtractionConfig`.

    Raises
    ------
    ModelError
        The config was made for another model, names unknown blocks or timesteps, or its sizes do not fit the
        blocks' strides (canvas maps must be whole, and even for Haar bands).
    """

    def __init__(self, backbone: Backbone, config: ExtractionConfig) -> None:
        if config.model_digest != backbone.digest:
            raise ModelError(
                f"config was made for model digest {config.model_digest[:16]}, but {backbone.name} has "
                f"{backbone.digest[:16]}; rebuild the config for this model"
            )
        check_blocks(backbone, config.blocks)
        check_timesteps(config.timesteps, backbone.num_train_timesteps)
        self.backbone = backbone
        self.config = config
        self.input_blocks = select_blocks(list_blocks(backbone, config.input_size), config.blocks)
        self.strides = {info.name: _stride(info, config.input_size) for info in self.input_blocks}
        self.blocks = [_canvas_block(info, self.strides[info.name], config) for info in self.input_blocks]
        self.tile_starts = tile_starts(
            config.canvas_size, config.input_size, config.tile_overlap, max(self.strides.values())
        )

    def entry_arrays(self, max_native_shape: tuple[int, int]) -> dict[str, ArraySpec]:
        """Per-image array specs of the entry; ``max_native_shape`` is the dataset's largest (native_y, native_x)."""
        steps, bands, canvas = len(self.config.timesteps), len(band_names(self.config.bands)), self.config.canvas_size
        arrays = {
            feature_array(info.name): ArraySpec(
                shape=(steps, bands, info.channels, banded_size(info.height, self.config.bands),
                       banded_size(info.width, self.config.bands)),
                dtype="float16",
                dims=("timestep", "band", f"{info.name}.channel", f"{info.name}.y", f"{info.name}.x"),
            )
            for info in self.blocks
        }
        arrays["image"] = ArraySpec(shape=(canvas, canvas, 3), dtype="uint8", dims=("y", "x", "rgb"))
        for name in ("vessel", "fov"):
            arrays[name] = ArraySpec(shape=(canvas, canvas), dtype="bool", dims=("y", "x"))
        arrays["geometry"] = ArraySpec(shape=(len(fields(Geometry)),), dtype="int64", dims=("geometry",))
        for name in ("native_vessel", "native_fov"):
            arrays[name] = ArraySpec(shape=tuple(max_native_shape), dtype="bool", dims=("native_y", "native_x"))
        return arrays

    def entry_coords(self) -> dict[str, list]:
        """Coordinate values: timesteps, band names and the geometry vector's field names."""
        return {
            "timestep": list(self.config.timesteps),
            "band": list(band_names(self.config.bands)),
            "geometry": [field.name for field in fields(Geometry)],
        }

    def entry_attrs(self) -> dict:
        """Provenance and layout: canvas-level block sizes (before the band split), levels, model path/id, versions."""
        return {
            **EntryLayout(blocks=tuple(self.blocks), levels=group_levels(self.blocks)).to_attrs(),
            "model": self.backbone.name,
            "torch_version": torch.__version__,
            "diffusers_version": diffusers.__version__,
        }

    def image_arrays(
        self, sample: Sample, max_native_shape: tuple[int, int], *, field_of_view_deg: float | None = None
    ) -> dict[str, np.ndarray]:
        """All arrays of one image, shaped as :meth:`entry_arrays` says.

        ``field_of_view_deg`` is the camera's field angle (the reader's); needed when the config has a
        ``canvas_field_deg``, ignored otherwise.

        Raises
        ------
        ModelError
            A feature value does not fit float16 (the model's activations are too large to cache), or the config
            spans a field angle and ``field_of_view_deg`` is missing.
        """
        check_fundus_photo(sample.image, sample.fov, self.config.canvas_size, f"image {sample.id!r}")
        canvas = to_canvas(
            sample.image,
            sample.vessel,
            sample.fov,
            canvas_size=self.config.canvas_size,
            fov_crop=self.config.fov_crop,
            fill=canvas_fill(self.config.canvas_field_deg, field_of_view_deg),
        )
        features = self.feature_maps(canvas.image, canvas.fov)
        arrays = {feature_array(name): maps for name, maps in features.items()}
        arrays["image"] = canvas.image
        arrays["vessel"] = canvas.vessel
        arrays["fov"] = canvas.fov
        arrays["geometry"] = canvas.geometry.to_array()
        arrays["native_vessel"] = _pad_top_left(sample.vessel, max_native_shape, sample.id)
        arrays["native_fov"] = _pad_top_left(sample.fov, max_native_shape, sample.id)
        return arrays

    def feature_maps(self, canvas_image: np.ndarray, canvas_fov: np.ndarray) -> dict[str, np.ndarray]:
        """Per block, (timestep, band, channel, y, x) float16 features of a (canvas_y, canvas_x, rgb) uint8 image.

        With an appearance target in the config, the image's colours inside `canvas_fov` ((y, x) bool) are first
        matched to it; with ``outside_fov`` "extend", the canvas outside the FOV is then filled from its border.
        """
        config = self.config
        if config.appearance is not None:
            canvas_image = match_appearance(canvas_image, canvas_fov, AppearanceTarget.from_dict(config.appearance))
        if config.outside_fov == OutsideFov.extend:
            canvas_image = extend_fov(canvas_image, canvas_fov)
        tiles = cut_tiles(image_tensor(canvas_image), self.tile_starts, config.input_size)
        features = extract_features(
            self.backbone,
            tiles,
            blocks=config.blocks,
            timesteps=config.timesteps,
            mode=config.mode,
            draws=config.draws,
            seed=config.seed,
            inversion_steps=config.inversion_steps,
        )
        maps = {}
        for info in self.blocks:
            stride = self.strides[info.name]
            stitched = stitch_tiles(
                features.maps[info.name].cpu(),
                self.tile_starts,
                canvas_map_size=info.height,
                stride=stride,
                overlap=config.tile_overlap,
            )
            banded = split_bands(stitched, config.bands).transpose(1, 2)  # (timestep, band, channel, y, x)
            maps[info.name] = round_mantissa(_to_float16(banded, info.name), config.mantissa_bits)
        return maps


def _stride(info: BlockLayout, input_size: int) -> int:
    """Input pixels per map pixel of a block; ModelError unless the map is square and divides the input."""
    if info.height != info.width or input_size % info.height:
        raise ModelError(
            f"block {info.name} maps a {input_size}px input to {info.height}x{info.width}; "
            "use an input size that is a multiple of 2**(number of down blocks)"
        )
    return input_size // info.height


def _canvas_block(info: BlockLayout, stride: int, config: ExtractionConfig) -> BlockLayout:
    """The block's map size on the whole (possibly tiled) canvas; ModelError if the canvas does not fit it."""
    multiple = stride * (2 if halves_maps(config.bands) else 1)
    if config.canvas_size % multiple:
        raise ModelError(
            f"canvas size {config.canvas_size} is not a multiple of {multiple} (block {info.name}, stride {stride}"
            f"{', halved again by Haar bands' if halves_maps(config.bands) else ''}); choose a multiple of {multiple}"
        )
    size = config.canvas_size // stride
    return replace(info, height=size, width=size)


def _pad_top_left(mask: np.ndarray, shape: tuple[int, int], image_id: str) -> np.ndarray:
    """(y, x) bool placed top-left in a (shape) False array (native masks of one entry share one shape)."""
    if mask.shape[0] > shape[0] or mask.shape[1] > shape[1]:
        raise ValueError(f"image {image_id} is {mask.shape}, larger than the entry's max native shape {shape}")
    padded = np.zeros(shape, dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded


def _to_float16(maps: torch.Tensor, block: str) -> np.ndarray:
    """float32 tensor -> float16 numpy, refusing values that overflow float16 rather than storing inf."""
    values = maps.numpy().astype(np.float16)
    if not np.isfinite(values).all():
        raise ModelError(f"block {block}: features overflow float16 (|value| > 65504); choose another block")
    return values
