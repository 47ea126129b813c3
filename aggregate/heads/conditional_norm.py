"""Timestep-conditional batch normalisation (BigGAN-style conditional BN, with a one-hot timestep as the class).

The maps of one block at different diffusion timesteps share the conv weights of a head but not their statistics:
statistics are pooled over the whole folded batch, and each timestep gets its own gain and bias.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TimestepConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d without affine terms, then ``gain[t] * x + bias[t]`` for each sample's timestep index ``t``.

    A linear map of a one-hot timestep is a row lookup, so gains and biases are ``nn.Embedding`` tables. They start
    at gain 1 and bias 0, so the layer starts as a plain BatchNorm2d.

    Parameters
    ----------
    channels
        Channels of the normalised map.
    num_timesteps
        Number of timesteps (rows of the gain and bias tables).
    """

    def __init__(self, channels: int, num_timesteps: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_timesteps, channels)
        self.bias = nn.Embedding(num_timesteps, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, timestep_index: Tensor) -> Tensor:
        """Normalise ``x`` (sample, channel, y, x) with ``timestep_index`` (sample,) int64 in [0, num_timesteps)."""
        gain = self.gain(timestep_index)[:, :, None, None]
        bias = self.bias(timestep_index)[:, :, None, None]
        return gain * self.norm(x) + bias


def folded_timestep_index(batch_size: int, num_timesteps: int, device: torch.device) -> Tensor:
    """Timestep index of each sample of a (batch, timestep) pair folded into one batch dim, batch-major.

    Returns
    -------
    Tensor
        (batch * timestep,) int64: ``0, 1, ..., T-1, 0, 1, ...``.
    """
    return torch.arange(num_timesteps, device=device).repeat(batch_size)
