"""Frequency bands of a feature map: one level of the orthonormal 2-D Haar transform, or the raw map.

Haar is critically sampled (four half-size bands hold exactly as many values as the map), exactly invertible and
orthonormal (energy is preserved), and its detail bands are mostly near zero, so they compress well.
"""

from __future__ import annotations

import torch

def haar_split(maps: torch.Tensor) -> torch.Tensor:
    """One level of the orthonormal 2-D Haar transform.

    Parameters
    ----------
    maps : torch.Tensor
        (..., y, x) with even y and x.

    Returns
    -------
    torch.Tensor
        (..., band, y/2, x/2) with band = LL (mean), LH (detail across rows: horizontal edges),
        HL (detail across columns: vertical edges), HH (diagonal detail).
    """
    if maps.shape[-1] % 2 or maps.shape[-2] % 2:
        raise ValueError(f"haar_split needs even map sizes, got {tuple(maps.shape[-2:])}")
    a = maps[..., 0::2, 0::2]
    b = maps[..., 0::2, 1::2]
    c = maps[..., 1::2, 0::2]
    d = maps[..., 1::2, 1::2]
    return torch.stack([a + b + c + d, a + b - c - d, a - b + c - d, a - b - c + d], dim=-3) / 2


def haar_merge(bands: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`haar_split`: (..., band=4, y, x) -> (..., 2y, 2x)."""
    ll, lh, hl, hh = bands.unbind(dim=-3)
    out = bands.new_empty(*bands.shape[:-3], 2 * bands.shape[-2], 2 * bands.shape[-1])
    out[..., 0::2, 0::2] = (ll + lh + hl + hh) / 2
    out[..., 0::2, 1::2] = (ll + lh - hl - hh) / 2
    out[..., 1::2, 0::2] = (ll - lh + hl - hh) / 2
    out[..., 1::2, 1::2] = (ll - lh - hl + hh) / 2
    return out


def split_bands(maps: torch.Tensor, bands: str) -> torch.Tensor:
    """(..., y, x) -> (..., band, y', x'): Haar bands at half size, or the raw map as a single band."""
    return haar_split(maps) if bands == "haar" else maps.unsqueeze(-3)
