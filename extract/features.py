"""Turn images into decoder-block features at a set of timesteps, three ways.

- ``anchored``: f(x0, t) for each t, the clean image as input and only the time embedding changing; exactly one pass
  per timestep, deterministic. Small inputs evaluate several timesteps in one network call (the batch repeated,
  one timestep per row).
- ``ddim``: deterministic DDIM inversion from x0 along a path of ascending timesteps; the features are those of the
  inversion passes at the cached timesteps. The path is :func:`inversion_path`: every (T // N)-th timestep of the
  schedule for ``inversion_steps`` N (default :data:`DEFAULT_INVERSION_STEPS`), up to the last cached timestep, with
  the cached timesteps merged in, so each is a step of the path (none is snapped) and the steps between them are
  about T / N apart. That is len(path) passes: 50 for the default timesteps of a T = 1000 model at N = 50 (44 on the
  grid 0, 20, ..., 860, plus 3, 13, 25, 125, 250 and 875). Without N (configs from before the option) the path is
  the cached timesteps alone, a coarse inversion of one pass per timestep. The first pass is f(x0, t_1), the
  anchored one.
- ``noised``: x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps with eps drawn from a seeded generator, features averaged over
  ``draws`` draws; ``draws`` passes per timestep (32 for 8 timesteps and 4 draws).

Every feature comes from a pass the mode makes anyway; ``ddim`` also runs the passes between cached timesteps, whose
features are dropped as soon as they are made.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers import DDIMInverseScheduler

from dgss.backbone.loading import Backbone
from dgss.extract.blocks import tap_blocks

# Input pixels (rows x height x width) an anchored call holds by default: 4 timesteps of one 64 px image. Batching
# timesteps saves per-call overhead, which only pays for small inputs. Measured on CPU (one torch thread, 8 timesteps,
# random `tiny` preset and the shipped backbone, 2 shared cores): 2-8 timesteps per call ran 1.04-1.31x as fast as one
# call per timestep at 64 px, 0.78-1.09x at 128 px and 0.57-0.81x at 256 px, where the wider activations outgrow the
# caches. The bound also caps a call's transient activations, which grow with its pixels.
PIXELS_PER_CALL = 4 * 64 * 64

# DDIM inversion steps over the whole schedule by default. The DiffDGSS releases do not say how finely their DDIM
# baseline inverts; 50 is DDIM's usual step count (diffusers' default, and what inversion-based editing uses), fine
# enough that the path's error is the inversion's own rather than its step size, and about 6x the cost of anchored.
DEFAULT_INVERSION_STEPS = 50


@dataclass(frozen=True)
class Features:
    """Block maps of one batch of images, how many network passes produced them and in how many calls.

    Attributes
    ----------
    maps : dict[str, torch.Tensor]
        Per block, (batch, timestep, channel, y, x) float32.
    passes : int
        Network passes per image: one per timestep evaluated (times the noise draws), however they were grouped
        into calls. This is the work done, the "UNet passes per image" of the README and the bench.
    calls : int
        Network calls made. Anchored mode evaluates several timesteps in one call, so it can be fewer than ``passes``.
    """

    maps: dict[str, torch.Tensor]
    passes: int
    calls: int


def extract_features(
    backbone: Backbone,
    images: torch.Tensor,
    *,
    blocks: Sequence[str],
    timesteps: Sequence[int],
    mode: str = "anchored",
    draws: int = 1,
    seed: int = 0,
    inversion_steps: int | None = None,
    timestep_batch: int | None = None,
) -> Features:
    """Features of ``images`` (batch, rgb, y, x) in [-1, 1] with the chosen mode; see the module docstring.

    ``timesteps`` must be valid for the backbone (see ``config.check_timesteps``); ``draws`` and ``seed`` only
    matter for ``noised``, ``inversion_steps`` only for ``ddim`` (None: through the cached timesteps alone),
    ``timestep_batch`` only for ``anchored`` (a runtime choice, not part of the config: it changes the features only
    by float rounding).
    """
    if mode == "anchored":
        return anchored_features(backbone, images, blocks=blocks, timesteps=timesteps, timestep_batch=timestep_batch)
    if mode == "ddim":
        return ddim_features(backbone, images, blocks=blocks, timesteps=timesteps, inversion_steps=inversion_steps)
    if mode == "noised":
        return noised_features(backbone, images, blocks=blocks, timesteps=timesteps, draws=draws, seed=seed)
    raise ValueError(f"unknown feature mode {mode!r}")


def anchored_features(
    backbone: Backbone,
    images: torch.Tensor,
    *,
    blocks: Sequence[str],
    timesteps: Sequence[int],
    timestep_batch: int | None = None,
) -> Features:
    """Features of f(x0, t) for each t: (batch, timestep, channel, y, x) per block, one pass per timestep.

    The passes are grouped ``timestep_batch`` timesteps to a call (1: one call per timestep): the encoded batch is
    repeated once per timestep of the group and each row is told its own timestep. The result equals one call per
    timestep up to float rounding (batched kernels may sum in another order). The default,
    :func:`default_timestep_batch`, batches small inputs only, where it is faster on CPU.
    """
    if timestep_batch is not None and timestep_batch < 1:
        raise ValueError(f"timestep_batch {timestep_batch}: use >= 1")
    with torch.inference_mode(), tap_blocks(backbone.network, blocks) as outputs:
        sample = backbone.encode(images.to(backbone.device))
        group = timestep_batch or default_timestep_batch(sample)
        groups = [list(timesteps[start : start + group]) for start in range(0, len(timesteps), group)]
        for steps in groups:
            backbone.predict(sample.repeat(len(steps), 1, 1, 1), _timestep_rows(steps, sample))
    per_step = {name: [part for out in outs for part in out.split(len(sample))] for name, outs in outputs.items()}
    return Features(maps=_stack_passes(per_step, groups=1), passes=len(timesteps), calls=len(groups))


def default_timestep_batch(sample: torch.Tensor) -> int:
    """Timesteps per anchored call for an encoded ``sample`` (batch, channel, y, x): as many as fit
    ``PIXELS_PER_CALL``, at least one. Inputs of 128 px and more (tiled or not) keep one call per timestep."""
    batch, _, height, width = sample.shape
    return max(1, PIXELS_PER_CALL // (batch * height * width))


def inversion_path(timesteps: Sequence[int], inversion_steps: int | None, num_train_timesteps: int) -> list[int]:
    """The ascending timesteps a DDIM inversion reading features at ``timesteps`` passes through.

    Every (T // N)-th timestep of the schedule (diffusers' "leading" spacing of N steps: 0, T // N, ...) up to the
    last of ``timesteps``, merged with ``timesteps`` themselves: each cached timestep is a step of the path, so no
    feature is read at a snapped timestep, and no step runs past the last one read. None: ``timesteps`` alone.
    """
    wanted = sorted(set(timesteps))
    if inversion_steps is None:
        return wanted
    if not 1 <= inversion_steps <= num_train_timesteps:
        raise ValueError(f"inversion_steps {inversion_steps}: use 1..{num_train_timesteps} (the model's T)")
    stride = num_train_timesteps // inversion_steps
    return sorted(set(range(0, wanted[-1] + 1, stride)) | set(wanted))


def ddim_features(
    backbone: Backbone,
    images: torch.Tensor,
    *,
    blocks: Sequence[str],
    timesteps: Sequence[int],
    inversion_steps: int | None = None,
) -> Features:
    """Features at ``timesteps`` of the deterministic DDIM inversion along :func:`inversion_path`; the passes
    between them are run and their features dropped as they come."""
    wanted = set(timesteps)
    path = inversion_path(timesteps, inversion_steps, backbone.num_train_timesteps)
    with torch.inference_mode(), tap_blocks(backbone.network, blocks) as outputs:

        def keep_cached(step: int) -> None:
            if step not in wanted:
                for passes in outputs.values():
                    passes.pop()

        ddim_invert(backbone, backbone.encode(images.to(backbone.device)), path, after_pass=keep_cached)
    return Features(maps=_stack_passes(outputs, groups=1), passes=len(path), calls=len(path))


def ddim_invert(
    backbone: Backbone,
    sample: torch.Tensor,
    timesteps: Sequence[int],
    after_pass: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Deterministic DDIM inversion of a clean ``sample`` (batch, channel, y, x) through ascending ``timesteps``.

    diffusers' ``DDIMInverseScheduler`` only steps on evenly spaced schedules, so each step is written out here with
    its noise schedule (``alphas_cumprod``, ``initial_alpha_cumprod``) and its convention: the model is called at the
    target timestep t with the sample of the previous level s (s = the start, a_s = initial_alpha_cumprod, for the
    first step), then x_t = sqrt(a_t) x0_hat + sqrt(1 - a_t) eps_hat (DDIM, eq. 12 with sigma = 0). On an evenly
    spaced schedule this equals diffusers' own inversion loop.

    For x0- and v-predicting models eps_hat is undefined at a clean start (a_s = 1); there it is derived from the
    level the model was told (a_t), which leaves that first step's sample unchanged. ``after_pass(t)`` is called
    after the model's pass at each t (the features hooks recorded are then the latest).

    Returns
    -------
    torch.Tensor
        The sample at the last timestep, (batch, channel, y, x).
    """
    scheduler = inverse_scheduler(backbone)
    alphas = scheduler.alphas_cumprod.to(sample.device, sample.dtype)
    alpha_prev = scheduler.initial_alpha_cumprod.to(sample.device, sample.dtype)
    for step in timesteps:
        output = backbone.predict(sample, _timestep_rows([step], sample))
        if after_pass is not None:
            after_pass(step)
        alpha = alphas[step]
        level = alpha if alpha_prev >= 1 and backbone.prediction_type != "epsilon" else alpha_prev
        clean, noise = _split_prediction(output, sample, level, backbone.prediction_type)
        sample = alpha.sqrt() * clean + (1 - alpha).sqrt() * noise
        alpha_prev = alpha
    return sample


def inverse_scheduler(backbone: Backbone) -> DDIMInverseScheduler:
    """diffusers' DDIM inverse scheduler for the backbone's schedule (clip_sample off, as inversion needs)."""
    accepted = inspect.signature(DDIMInverseScheduler.__init__).parameters
    config = {key: value for key, value in backbone.scheduler_config.items() if key in accepted}
    return DDIMInverseScheduler.from_config(config, clip_sample=False)


def _split_prediction(
    output: torch.Tensor, sample: torch.Tensor, alpha: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat) from a model output on ``sample`` read at signal level ``alpha`` (DDIM eq. 12 terms)."""
    if prediction_type == "epsilon":
        return (sample - (1 - alpha).sqrt() * output) / alpha.sqrt(), output
    if prediction_type == "sample":
        return output, (sample - alpha.sqrt() * output) / (1 - alpha).sqrt()
    return alpha.sqrt() * sample - (1 - alpha).sqrt() * output, alpha.sqrt() * output + (1 - alpha).sqrt() * sample


def noised_features(
    backbone: Backbone,
    images: torch.Tensor,
    *,
    blocks: Sequence[str],
    timesteps: Sequence[int],
    draws: int = 1,
    seed: int = 0,
) -> Features:
    """Features of f(sqrt(a_t) x0 + sqrt(1 - a_t) eps, t), averaged over ``draws`` draws of eps per timestep.

    The noise comes from a CPU ``torch.Generator`` seeded with ``seed`` and drawn in (timestep, draw) order, so the
    result is reproducible on any device.
    """
    alphas = backbone.alphas_cumprod()
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode(), tap_blocks(backbone.network, blocks) as outputs:
        clean = backbone.encode(images.to(backbone.device))
        for step in timesteps:
            alpha = alphas[step].to(clean.device, clean.dtype)
            for _ in range(draws):
                noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device)
                backbone.predict(alpha.sqrt() * clean + (1 - alpha).sqrt() * noise, _timestep_rows([step], clean))
    passes = len(timesteps) * draws
    return Features(maps=_stack_passes(outputs, groups=draws), passes=passes, calls=passes)


def _timestep_rows(steps: Sequence[int], sample: torch.Tensor) -> torch.Tensor:
    """(len(steps) * batch,) long timesteps on the sample's device: each step once per row of ``sample``, in order."""
    return torch.tensor(list(steps), dtype=torch.long, device=sample.device).repeat_interleave(sample.shape[0])


def _stack_passes(outputs: dict[str, list[torch.Tensor]], groups: int) -> dict[str, torch.Tensor]:
    """Per block, passes (timestep-major, ``groups`` consecutive passes per timestep, averaged) ->
    (batch, timestep, channel, y, x) float32."""
    maps = {}
    for name, passes in outputs.items():
        stacked = torch.stack(passes, dim=1).float()  # (batch, pass, channel, y, x)
        batch, count, *rest = stacked.shape
        maps[name] = stacked.reshape(batch, count // groups, groups, *rest).mean(dim=2)
    return maps
