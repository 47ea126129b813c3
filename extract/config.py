"""The extraction config: every setting that changes the cached features, and so the cache key.

The model enters through its weight digest, never its path: moving a model keeps its cache, retraining it does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dgss.errors import ModelError
from dgss.extract.settings import ExtractionSettings, Mode, OutsideFov
from dgss.settings import check_settings
from dgss.store import SCHEMA_VERSION, config_key

# The timestep set DiffDGSSv2 publishes, out of T = 4000 training steps.
PAPER_TIMESTEPS = (1, 10, 50, 100, 500, 1000, 2000, 3500)
PAPER_TRAIN_TIMESTEPS = 4000


def default_timesteps(num_train_timesteps: int) -> tuple[int, ...]:
    """The paper's set {1, 10, 50, 100, 500, 1000, 2000, 3500} of T=4000, mapped proportionally onto T.

    Rounded half up, clipped to 0 .. T-1, deduplicated and sorted; identical to the paper's set when T = 4000.
    """
    scale = num_train_timesteps / PAPER_TRAIN_TIMESTEPS
    mapped = {min(num_train_timesteps - 1, math.floor(step * scale + 0.5)) for step in PAPER_TIMESTEPS}
    return tuple(sorted(mapped))


def check_timesteps(timesteps: Sequence[int], num_train_timesteps: int) -> tuple[int, ...]:
    """Sorted, deduplicated timesteps; ModelError if any is not an integer in 0 .. T-1 or none is given."""
    bad = _non_integers(timesteps)
    bad += [step for step in timesteps if step not in bad and not 0 <= step < num_train_timesteps]
    if bad or not timesteps:
        what = f"timestep {', '.join(map(str, bad))}" if bad else "no timestep given"
        last = num_train_timesteps - 1
        raise ModelError(f"{what}: the model was trained with {num_train_timesteps} steps, use integers 0..{last}")
    return _normal_timesteps(timesteps)


def _normal_timesteps(timesteps: Sequence[int]) -> tuple[int, ...]:
    """Sorted and deduplicated, so every path (CLI, API, from_dict) gets one key per set of timesteps and coords that
    follow the data (ddim inverts in ascending order; a repeated step would be computed and cached twice)."""
    bad = _non_integers(timesteps)
    if bad:
        raise ModelError(f"timestep {', '.join(map(repr, bad))}: timesteps are integers 0..T-1 (T: the model's steps)")
    return tuple(sorted(set(timesteps)))


def check_field_angle(degrees: float, what: str) -> float:
    """``degrees`` as a float; ModelError unless it is a finite number > 0 (one key per angle: 45 and 45.0 alike)."""
    number = isinstance(degrees, (int, float)) and not isinstance(degrees, bool)
    if not number or not math.isfinite(degrees) or degrees <= 0:
        raise ModelError(f"{what} {degrees!r}: use a finite angle > 0 degrees, e.g. 45 (DRIVE's field)")
    return float(degrees)


def _non_integers(timesteps: Sequence[int]) -> list:
    """The entries that are not plain integers (bools are ints to Python, not timesteps)."""
    return [step for step in timesteps if isinstance(step, bool) or not isinstance(step, int)]


# Fields recorded under another name: the name they had when the first keys were computed.
RECORDED_NAMES = {"draws": "ensemble"}
UNRECORDED_VALUES = {"canvas_field_deg": None, "inversion_steps": None, "outside_fov": OutsideFov.black}
"""Options added after stores were first written, with the value every config had before them: a config with
that value leaves the field out of :meth:`ExtractionConfig.to_dict`, so its key stays what it was."""


@dataclass(frozen=True, kw_only=True)
class ExtractionConfig:
    """What was extracted and how; ``key()`` names the store entry.

    Attributes
    ----------
    model_digest : str
        sha256 of the backbone's weights and schedule (``Backbone.digest``).
    blocks : tuple of str
        Tapped decoder blocks, e.g. ("mid_block", "up_blocks.1").
    timesteps : tuple of int
        Diffusion timesteps, 0 .. T-1: sorted and deduplicated on construction, whatever order they are given in.
    mode : str
        "anchored" (f(x0, t), the default), "ddim" (deterministic inversion) or "noised" (random forward noise).
    draws : int
        Noise draws averaged per timestep ("noised" only; 1 otherwise). Recorded as ``ensemble``, its name when
        the first keys were computed, so that every key stayed when it was renamed.
    seed : int
        Seed of the noise draws ("noised").
    inversion_steps : int or None
        "ddim" only: the inversion takes every (T // N)-th timestep up to the last cached one, the cached ones merged
        in (``dgss.extract.features.inversion_path``); None: through the cached timesteps alone, the coarse path of
        configs from before the option (``make_config`` gives ddim ``DEFAULT_INVERSION_STEPS``). Left out of
        :meth:`to_dict` when None, so configs without it keep their keys.
    bands : str
        "haar" (LL, LH, HL, HH at half size) or "none" (the raw map as one band "raw").
    input_size : int
        Side of the square model input (pixels).
    canvas_size : int
        Side of the square canvas every image is mapped to; larger than input_size means overlapping tiles.
    tile_overlap : int
        Overlap of neighbouring tiles (pixels); 0 when not tiled.
    appearance : dict or None
        Per-channel FOV mean/std every image is matched to before the UNet sees it (the backbone's training pool,
        ``dgss.backbone.appearance``); None leaves images as they are.
    mantissa_bits : int
        Mantissa bits kept of each float16 value (10 = lossless); the relative rounding error is at most
        2**-(mantissa_bits + 1). Fewer bits compress better (see ``dgss.extract.precision``).
    fov_crop : bool
        Crop each image to its field-of-view bounding box before resizing to the canvas.
    canvas_field_deg : float or None
        Field angle (degrees) the canvas side spans, so every camera gets the same pixels per degree: an image's
        FOV box (longer side) is scaled to ``canvas_size * min(1, its field angle / canvas_field_deg)`` pixels and
        centred; a camera wider than this is fitted to the canvas (fill 1), not cropped. None (default): every FOV
        fills the canvas. Left out of :meth:`to_dict` when None, so configs without it keep their keys.
    outside_fov : str
        "black" (default): the canvas outside the FOV as photographed; "extend": filled from the FOV's border
        (``dgss.extract.fov_border``), after appearance matching, before the UNet. Left out of :meth:`to_dict`
        when black.
    schema_version : int
        The store schema these arrays follow.
    """

    model_digest: str
    blocks: tuple[str, ...]
    timesteps: tuple[int, ...]
    mode: str = ExtractionSettings.mode.default
    draws: int = ExtractionSettings.draws.default
    seed: int = ExtractionSettings.seed.default
    inversion_steps: int | None = ExtractionSettings.inversion_steps.default
    bands: str = ExtractionSettings.bands.default
    input_size: int
    canvas_size: int
    tile_overlap: int = ExtractionSettings.tile_overlap.default
    appearance: dict[str, list[float]] | None = None
    mantissa_bits: int = ExtractionSettings.mantissa_bits.default
    fov_crop: bool = True
    canvas_field_deg: float | None = ExtractionSettings.canvas_field_deg.default
    outside_fov: str = ExtractionSettings.outside_fov.default
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "timesteps", _normal_timesteps(self.timesteps))
        check_settings(self, ExtractionSettings, ModelError)  # the bounds `dgss extract` checks its options against
        for name in ("mode", "bands", "outside_fov"):  # plain strings in the config, whichever way they were given
            object.__setattr__(self, name, str(getattr(self, name)))
        if self.mode != Mode.noised and self.draws != 1:
            raise ModelError(f"draws {self.draws}: use >= 1 with mode noised, 1 with other modes")
        if self.mode != Mode.ddim and self.inversion_steps is not None:
            raise ModelError(f"inversion steps {self.inversion_steps}: only mode ddim inverts; leave them out")
        if self.canvas_size < self.input_size:
            raise ModelError(f"canvas size {self.canvas_size} is smaller than the input size {self.input_size}")
        if not 0 <= self.tile_overlap < self.input_size:
            raise ModelError(f"tile overlap {self.tile_overlap}: use 0 .. {self.input_size - 1} (input size - 1)")
        if self.canvas_field_deg is not None:
            object.__setattr__(self, "canvas_field_deg", check_field_angle(self.canvas_field_deg, "canvas field angle"))

    @property
    def tiled(self) -> bool:
        """True when the canvas is covered by several model-input tiles."""
        return self.canvas_size > self.input_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples): the store entry's config."""
        data = asdict(self)
        data["blocks"] = list(self.blocks)
        data["timesteps"] = list(self.timesteps)
        for name, before in UNRECORDED_VALUES.items():
            if data[name] == before:
                del data[name]  # absent: configs from before the option keep their keys
        return {RECORDED_NAMES.get(name, name): value for name, value in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractionConfig:
        """Inverse of :meth:`to_dict` (a field it leaves out takes its `UNRECORDED_VALUES` value, the default)."""
        fields = {recorded: name for name, recorded in RECORDED_NAMES.items()}
        return cls(**{fields.get(name, name): value for name, value in data.items()})

    def key(self) -> str:
        """The store key: first 16 hex chars of the sha256 of the canonical JSON of :meth:`to_dict`."""
        return config_key(self.to_dict())
