"""Turn images into decoder-block features at a set of timesteps, three ways (METHOD.md §1).

- ``anchored``: f(x0, t) for each t, the clean image as input and only the time embedding changing; exactly one pass
  per timestep, deterministic.
- ``ddim``: deterministic DDIM inversion from x0 through the requested timesteps (ascending); the features are those
  of the inversion passes themselves, so again one pass per timestep. The first pass is f(x0, t_1), the anchored one.
- ``noised``: x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps with eps drawn from a seeded generator, features averaged over
  ``ensemble`` draws; ``ensemble`` passes per timestep.

Every feature comes from a pass the mode makes anyway; no pass is run only to read features.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers import DDIMInverseScheduler

from dgss.extract.backbone import Backbone
from dgss.extract.blocks import tap_blocks


@dataclass(frozen=True)
class Features:
    """Block maps of one batch of images and how many network passes produced them.

    Attributes
    ----------
    maps : dict[str, torch.Tensor]
        Per block, (batch, timestep, channel, y, x) float32.
    passes : int
        Network calls made (each on the whole batch).
    """

    maps: dict[str, torch.Tensor]
    passes: int


def extract_features(
    backbone: Backbone,
    images: torch.Tensor,
    *,
    blocks: Sequence[str],
    timesteps: Sequence[int],
    mode: str = "anchored",
    ensemble: int = 1,
    seed: int = 0,
) -> Features:
    """Features of ``images`` (batch, rgb, y, x) in [-1, 1] with the chosen mode; see the module docstring.

    ``timesteps`` must be valid for the backbone (see ``config.check_timesteps``); ``ensemble`` and ``seed`` only
    matter for ``noised``.
    """
    if mode == "anchored":
        return anchored_features(backbone, images, blocks=blocks, timesteps=timesteps)
    if mode == "ddim":
        return ddim_features(backbone, images, blocks=blocks, timesteps=timesteps)
    if mode == "noised":
        return noised_features(backbone, images, blocks=blocks, timesteps=timesteps, ensemble=ensemble, seed=seed)
    raise ValueError(f"unknown feature mode {mode!r}")


def anchored_features(
    backbone: Backbone, images: torch.Tensor, *, blocks: Sequence[str], timesteps: Sequence[int]
) -> Features:
    """Features of f(x0, t) for each t: (batch, timestep, channel, y, x) per block, one pass per timestep."""
    with torch.inference_mode(), tap_blocks(backbone.network, blocks) as outputs:
        sample = backbone.encode(images.to(backbone.device))
        for step in timesteps:
            backbone.predict(sample, _timestep_batch(step, sample))
    return Features(maps=_stack_passes(outputs, groups=1), passes=len(timesteps))


def ddim_features(
    backbone: Backbone, images: torch.Tensor, *, blocks: Sequence[str], timesteps: Sequence[int]
) -> Features:
    """Features of the deterministic DDIM inversion passes through ``timesteps`` (sorted ascending)."""
    with torch.inference_mode(), tap_blocks(backbone.network, blocks) as outputs:
        ddim_invert(backbone, backbone.encode(images.to(backbone.device)), sorted(timesteps))
    return Features(maps=_stack_passes(outputs, groups=1), passes=len(timesteps))


def ddim_invert(backbone: Backbone, sample: torch.Tensor, timesteps: Sequence[int]) -> torch.Tensor:
    """Deterministic DDIM inversion of a clean ``sample`` (batch, channel, y, x) through ascending ``timesteps``.

    diffusers' ``DDIMInverseScheduler`` only steps on evenly spaced schedules, so each step is written out here with
    its noise schedule (``alphas_cumprod``, ``initial_alpha_cumprod``) and its convention: the model is called at the
    target timestep t with the sample of the previous level s (s = the start, a_s = initial_alpha_cumprod, for the
    first step), then x_t = sqrt(a_t) x0_hat + sqrt(1 - a_t) eps_hat (DDIM, eq. 12 with sigma = 0). On an evenly
    spaced schedule this equals diffusers' own inversion loop.

    For x0- and v-predicting models eps_hat is undefined at a clean start (a_s = 1); there it is derived from the
    level the model was told (a_t), which leaves that first step's sample unchanged.

    Returns
    -------
    torch.Tensor
        The sample at the last timestep, (batch, channel, y, x).
    """
    scheduler = inverse_scheduler(backbone)
    alphas = scheduler.alphas_cumprod.to(sample.device, sample.dtype)
    alpha_prev = scheduler.initial_alpha_cumprod.to(sample.device, sample.dtype)
    for step in timesteps:
        output = backbone.predict(sample, _timestep_batch(step, sample))
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
    ensemble: int = 1,
    seed: int = 0,
) -> Features:
    """Features of f(sqrt(a_t) x0 + sqrt(1 - a_t) eps, t), averaged over ``ensemble`` draws of eps per timestep.

    The noise comes from a CPU ``torch.Generator`` seeded with ``seed`` and drawn in (timestep, draw) order, so the
    result is reproducible on any device.
    """
    alphas = backbone.alphas_cumprod()
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode(), tap_blocks(backbone.network, blocks) as outputs:
        clean = backbone.encode(images.to(backbone.device))
        for step in timesteps:
            alpha = alphas[step].to(clean.device, clean.dtype)
            for _ in range(ensemble):
                noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device)
                backbone.predict(alpha.sqrt() * clean + (1 - alpha).sqrt() * noise, _timestep_batch(step, clean))
    return Features(maps=_stack_passes(outputs, groups=ensemble), passes=len(timesteps) * ensemble)


def _timestep_batch(step: int, sample: torch.Tensor) -> torch.Tensor:
    """The timestep as a (batch,) long tensor on the sample's device."""
    return torch.full((sample.shape[0],), step, dtype=torch.long, device=sample.device)


def _stack_passes(outputs: dict[str, list[torch.Tensor]], groups: int) -> dict[str, torch.Tensor]:
    """Per block, passes (timestep-major, ``groups`` consecutive passes per timestep, averaged) ->
    (batch, timestep, channel, y, x) float32."""
    maps = {}
    for name, passes in outputs.items():
        stacked = torch.stack(passes, dim=1).float()  # (batch, pass, channel, y, x)
        batch, count, *rest = stacked.shape
        maps[name] = stacked.reshape(batch, count // groups, groups, *rest).mean(dim=2)
    return maps
