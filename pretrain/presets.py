"""What backbone to train: the training config, its named presets, and the UNet and noise schedule it builds.

The architecture lives in the config (not only a preset name) so that the JSON written beside a trained model says
exactly what was trained, and `--resume` can refuse a config that differs from the interrupted run's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from dgss.errors import ModelError
from dgss.settings import LRSchedule, PredictionType

PREDICTION_TYPES = tuple(PredictionType)
LR_SCHEDULES = tuple(LRSchedule)

# Fields that may change between an interrupted run and its `--resume` without changing the weights it produces.
RESUMABLE_FIELDS = frozenset({
    "steps", "checkpoint_every", "sample_count", "sample_steps", "device", "gradient_checkpointing",
})
# Fields of the per-step schedules (learning rate, crop augmentation): a resume may change them where every step
# already trained keeps its rate and its data (a constant run may be given a cool-down, or an augmentation, that
# starts after its last step; a cosine run cannot move its end).
SCHEDULE_FIELDS = frozenset({"steps", "lr_schedule", "lr_warmup_steps", "lr_cooldown_steps",
                             "zoom_range", "photometric", "augment_from_step"})

# Fields of older `training.json` files that no longer mean anything (one checkpoint file replaced the last N):
# `from_dict` drops them so those runs still resume.
RETIRED_FIELDS = frozenset({"keep_checkpoints"})
# Fields of older `training.json` files saved under another name: `complete_record` reads them under the new one.
# `zoom_from_step` became `augment_from_step` when photometric augmentation joined the zoom.
RENAMED_FIELDS = {"zoom_from_step": "augment_from_step"}

PRESETS: dict[str, dict[str, Any]] = {
    # Minutes on 2 CPU cores: tests and the demo. No attention anywhere (attention dominates a UNet's CPU time).
    # Four levels, so that the default coarse/middle/fine blocks exist at strides 8, 4 and 2.
    "tiny": dict(
        resolution=64, image_size=256, block_out_channels=(32, 64, 64, 64), layers_per_block=1, attention_levels=(),
        attention_head_dim=8, norm_num_groups=8, resnet_updown=False, scale_shift_norm=False,
        num_train_timesteps=1000, prediction_type="sample", steps=2000, batch_size=8, lr=2e-4, ema_decay=0.999,
        checkpoint_every=500,
    ),
    # Hours on CPU for the real datasets (about 550 GFLOP per step at batch 8: a few seconds on 2 cores); attention
    # only at the coarsest level (16x16 at 128 px). 64 base channels would cost 2.3x the FLOPs for little gain here.
    "small": dict(
        resolution=128, image_size=512, block_out_channels=(32, 64, 128, 256), layers_per_block=2, attention_levels=(3,),
        attention_head_dim=64, norm_num_groups=16, resnet_updown=False, scale_shift_norm=False,
        num_train_timesteps=1000, prediction_type="sample", steps=5000, batch_size=8, lr=2e-4, ema_decay=0.999,
        checkpoint_every=500,
    ),
    # The shipped default backbone's recipe, field for field as backbone/models/fundus-pool-v2/training.json records
    # it (a test holds them equal): bench/backbone_recipes.py's `crop128`, the sweep's winner, i.e. fundus-pool-v1's
    # four-level UNet on 128 px crops in batches of 4, predicting epsilon (x0, the paper's target, ranked last).
    "fundus-pool-v2": dict(
        resolution=128, image_size=512, block_out_channels=(32, 64, 64, 128), layers_per_block=1, attention_levels=(),
        attention_head_dim=8, norm_num_groups=8, resnet_updown=False, scale_shift_norm=False,
        num_train_timesteps=1000, prediction_type="epsilon", steps=20000, batch_size=4, lr=2e-4, ema_decay=0.999,
        checkpoint_every=1000,
    ),
    # The published ADM-like backbone for a GPU: guided-diffusion's 512 px layout (256 base channels with
    # channel_mult 0.5,1,1,2,2,4,4), 2 res blocks, attention at 32/16/8, scale-shift norm, resblock up/down, T=4000.
    "adm": dict(
        resolution=512, image_size=512, block_out_channels=(128, 256, 256, 512, 512, 1024, 1024), layers_per_block=2,
        attention_levels=(4, 5, 6), attention_head_dim=64, norm_num_groups=32, resnet_updown=True,
        scale_shift_norm=True, num_train_timesteps=4000, prediction_type="sample", steps=200000, batch_size=16,
        lr=1e-4, ema_decay=0.9999, checkpoint_every=5000, gradient_checkpointing=True,
    ),
}


@dataclass(frozen=True, kw_only=True)
class BackboneTrainingConfig:
    """Everything that decides a trained backbone's weights, plus how often to checkpoint and where to run.

    Build it with :meth:`from_preset` and override single fields; every field is concrete, so the saved JSON is the
    whole recipe.
    """

    preset: str
    resolution: int  # side of the training crops
    image_size: int  # side of the FOV square the crops are cut from: the scale features are extracted at
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    attention_levels: tuple[int, ...]  # indices into block_out_channels; 0 is full resolution
    attention_head_dim: int
    norm_num_groups: int
    resnet_updown: bool
    scale_shift_norm: bool
    num_train_timesteps: int
    # x0, as in the paper; "epsilon" is the usual DDPM target; "v_prediction" (sqrt(a) eps - sqrt(1 - a) x0) stays
    # well posed where the signal vanishes, so the network learns colour and layout at high noise too
    prediction_type: str = "sample"
    steps: int
    batch_size: int
    lr: float
    lr_schedule: str = "constant"  # "cosine": down to 0 at `steps`, after the warm-up (see learning_rate)
    lr_warmup_steps: int = 0  # linear ramp up to lr over the first steps
    # "constant" only: the last steps decay linearly to 0 (warm-up, stable, decay), so a long constant run that has
    # stopped improving can be cooled down from its checkpoint without being trained again from step 0
    lr_cooldown_steps: int = 0
    # Scale augmentation: each crop is cut at a zoom drawn log-uniformly from this range and resized to `resolution`.
    # Above 1 vessels look wider, as a camera with a narrower field shows them (CHASE_DB1's 30 degrees against the
    # pool's 45); below 1 thinner. (1, 1) cuts crops at the scale features are extracted at only.
    zoom_range: tuple[float, float] = (1.0, 1.0)
    # Photometric augmentation: each crop re-rendered inside its FOV as another camera might show it (gamma, contrast,
    # colour cast, blur, noise: the draws of the `NAME+photoK` dataset views), so features learn to ignore them.
    photometric: bool = False
    augment_from_step: int = 0  # the first step zoom and photometric apply to (a finished run resumes with them)
    ema_decay: float
    grad_clip: float = 1.0
    checkpoint_every: int
    sample_count: int = 8  # samples drawn at every checkpoint, shown beside as many real crops
    sample_steps: int = 250  # ancestral steps per sample: fewer give flat, blurry samples that misjudge the model
    seed: int = 0
    device: str = "cpu"
    gradient_checkpointing: bool = False  # recompute activations in backward: larger batches for ~30% more time

    def __post_init__(self) -> None:
        levels = len(self.block_out_channels)
        if self.prediction_type not in PREDICTION_TYPES:
            raise ModelError(f"prediction_type {self.prediction_type!r} is unknown; use one of "
                             f"{', '.join(PREDICTION_TYPES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ModelError(f"lr_schedule {self.lr_schedule!r} is unknown; use one of {', '.join(LR_SCHEDULES)}")
        if self.lr_warmup_steps < 0:
            raise ModelError(f"lr_warmup_steps must be 0 or more, got {self.lr_warmup_steps}")
        if not 0 <= self.lr_cooldown_steps <= self.steps:
            raise ModelError(f"lr_cooldown_steps must lie in 0..steps={self.steps}, got {self.lr_cooldown_steps}")
        if self.lr_cooldown_steps and self.lr_schedule != "constant":
            raise ModelError(f"lr_cooldown_steps applies to the constant schedule, not to {self.lr_schedule!r}")
        low, high = self.zoom_range
        if not 0 < low <= high:
            raise ModelError(f"zoom_range {self.zoom_range} must satisfy 0 < low <= high")
        if self.resolution / low > self.image_size:
            raise ModelError(
                f"zoom_range {self.zoom_range}: a crop cut at zoom {low} ({self.resolution} / {low} px) would not "
                f"fit its FOV square of image_size {self.image_size}; raise the low zoom to "
                f"{self.resolution / self.image_size:.3g} or more"
            )
        if self.augment_from_step < 0:
            raise ModelError(f"augment_from_step must be 0 or more, got {self.augment_from_step}")
        if levels < 1 or any(c <= 0 or c % self.norm_num_groups for c in self.block_out_channels):
            raise ModelError(
                f"block_out_channels {self.block_out_channels} must be positive multiples of "
                f"norm_num_groups={self.norm_num_groups}"
            )
        if self.resolution <= 0 or self.resolution % 2 ** (levels - 1):
            raise ModelError(
                f"resolution {self.resolution} must be a positive multiple of {2 ** (levels - 1)} "
                f"for {levels} UNet levels"
            )
        if any(not 0 <= level < levels for level in self.attention_levels):
            raise ModelError(f"attention_levels {self.attention_levels} must lie in 0..{levels - 1}")
        if self.image_size < self.resolution:
            raise ModelError(f"image_size {self.image_size} is smaller than the crop resolution {self.resolution}")
        for name in ("steps", "batch_size", "checkpoint_every", "num_train_timesteps",
                     "layers_per_block", "sample_steps", "sample_count"):
            if getattr(self, name) <= 0:
                raise ModelError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ModelError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ModelError(f"device {self.device!r} is unknown; use cpu, cuda or cuda:N")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> BackboneTrainingConfig:
        """The named preset with some fields replaced; `None` overrides are ignored (unset CLI options)."""
        if preset not in PRESETS:
            raise ModelError(f"unknown backbone preset {preset!r}; choose one of {sorted(PRESETS)}")
        given = {name: value for name, value in overrides.items() if value is not None}
        return cls(preset=preset, **{**PRESETS[preset], **given})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {field.name: _to_json(getattr(self, field.name)) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneTrainingConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (RETIRED_FIELDS are dropped, not unknown)."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - RETIRED_FIELDS)
        if unknown:
            raise ModelError(f"backbone training config has unknown fields {unknown}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in data.items() if key not in RETIRED_FIELDS})

    @classmethod
    def complete_record(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A saved config dict with the fields it lacks at their defaults: a run recorded before a field existed
        was trained as its default says (no `lr_schedule`: constant), so `--resume` compares it as such."""
        defaults = {field.name: _to_json(field.default) for field in dataclasses.fields(cls)
                    if field.default is not dataclasses.MISSING}
        return {**defaults, **{RENAMED_FIELDS.get(key, key): value for key, value in data.items()}}

    def attention_resolutions(self) -> tuple[int, ...]:
        """Feature-map sizes (pixels) at which self-attention runs, for the model card."""
        return tuple(self.resolution // 2**level for level in sorted(self.attention_levels))


def _to_json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def build_unet(config: BackboneTrainingConfig) -> UNet2DModel:
    """A freshly initialised UNet2DModel (RGB in, RGB out) with the config's architecture."""
    levels = len(config.block_out_channels)
    attention = set(config.attention_levels)
    # sample_size is the image scale, not the crop: extraction defaults to it, so features come at the scale the
    # backbone learned vessels at (the UNet is fully convolutional).
    return UNet2DModel(
        sample_size=config.image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        down_block_types=tuple("AttnDownBlock2D" if i in attention else "DownBlock2D" for i in range(levels)),
        up_block_types=tuple(
            "AttnUpBlock2D" if levels - 1 - i in attention else "UpBlock2D" for i in range(levels)
        ),
        add_attention=levels - 1 in attention,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        resnet_time_scale_shift="scale_shift" if config.scale_shift_norm else "default",
        downsample_type="resnet" if config.resnet_updown else "conv",
        upsample_type="resnet" if config.resnet_updown else "conv",
    )


def learning_rate(config: BackboneTrainingConfig, step: int) -> float:
    """The learning rate of (0-based) optimizer step `step`: a function of the step alone, so that a resumed run
    follows the schedule of one that never stopped.

    A linear warm-up reaches `lr` at step `lr_warmup_steps - 1`; then "constant" holds it (its last N =
    `lr_cooldown_steps` steps falling linearly towards 0: N/(N+1) of it, ..., 1/(N+1)) and "cosine" follows half a
    cosine from `lr` to 0 at step `steps` (the usual DDPM/ADM recipe; its end is the run's planned length).
    """
    if step < config.lr_warmup_steps:
        return config.lr * (step + 1) / config.lr_warmup_steps
    if config.lr_schedule == "constant":
        steps_left = config.steps - step
        return config.lr * min(1.0, steps_left / (config.lr_cooldown_steps + 1))
    progress = (step - config.lr_warmup_steps) / max(1, config.steps - config.lr_warmup_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def crop_zoom(config: BackboneTrainingConfig, step: int) -> tuple[float, float]:
    """The zoom range of (0-based) step `step`'s crops: (1, 1), no zoom, before `augment_from_step`."""
    return config.zoom_range if step >= config.augment_from_step else (1.0, 1.0)


def crop_photometric(config: BackboneTrainingConfig, step: int) -> bool:
    """Whether step `step`'s crops are photometrically re-rendered: never before `augment_from_step`."""
    return config.photometric and step >= config.augment_from_step


def _schedule(config: BackboneTrainingConfig) -> dict[str, Any]:
    """The noise schedule both schedulers share: cosine betas (Nichol & Dhariwal), the config's target, unclipped."""
    return dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type=config.prediction_type,
        clip_sample=False,
    )


def build_noise_scheduler(config: BackboneTrainingConfig) -> DDPMScheduler:
    """The training scheduler (DDPM) on the config's schedule."""
    return DDPMScheduler(**_schedule(config))


def build_saved_scheduler(config: BackboneTrainingConfig) -> DDIMScheduler:
    """The scheduler saved beside the weights: DDIM on the training schedule, unclipped so inversion is exact."""
    return DDIMScheduler(**_schedule(config))
