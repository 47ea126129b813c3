"""Segmentation heads registered by name; every head maps a batch to (batch, 2, side, side) logits
over the canvas or over a window of it.

``build_head(name, spec, seed=..., **hparams)`` is the one way to make a head: hyperparameters are the fields of
the head's frozen config dataclass (``head.config.to_dict()`` gives them back for saving), and the weights depend
only on the seed, not on the global random state.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import nn

from dgss.aggregate.heads.mlp import MLPConfig, MLPHead
from dgss.aggregate.heads.tsfreqagg import TSFreqAggConfig, TSFreqAggHead
from dgss.aggregate.heads.unet import UNetConfig, UNetHead
from dgss.aggregate.spec import CacheSpec
from dgss.errors import ModelError

_HEADS: dict[str, tuple[type, type[nn.Module]]] = {
    "mlp": (MLPConfig, MLPHead),
    "tsfreqagg": (TSFreqAggConfig, TSFreqAggHead),
    "unet": (UNetConfig, UNetHead),
}
HEAD_NAMES: tuple[str, ...] = tuple(sorted(_HEADS))


def head_uses_features(name: str) -> bool:
    """Whether head ``name`` reads cached features (False: only the canvas image), so loaders can skip them."""
    head_config(name)
    return _HEADS[name][1].uses_features


def head_config(name: str, **hparams: Any) -> Any:
    """The frozen config of head ``name`` with ``hparams`` over its defaults (JSON lists are accepted for tuples).

    Raises
    ------
    ModelError
        ``name`` is not a head, or a hyperparameter is not one of that head's.
    """
    if name not in _HEADS:
        raise ModelError(f"unknown head {name!r}; choose one of {', '.join(HEAD_NAMES)}")
    config_class = _HEADS[name][0]
    valid = sorted(f.name for f in fields(config_class))
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ModelError(f"head {name!r} has no hyperparameter {', '.join(unknown)}; valid: {', '.join(valid)}")
    return config_class.from_dict(hparams)


def recorded_head_params(name: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """A run record's hyperparameters of head ``name``, with the value each field it predates had then (a record
    lists every field its code knew; a field added later with a new default must not change an old run)."""
    head_config(name)
    return getattr(_HEADS[name][0], "predated", {}) | hparams


def build_head(name: str, spec: CacheSpec, *, seed: int = 0, **hparams: Any) -> nn.Module:
    """Build head ``name`` for the cache described by ``spec``, with weights drawn from ``seed``.

    Parameters
    ----------
    name
        One of :data:`HEAD_NAMES`.
    spec
        The cache the head reads (blocks, levels, timesteps, bands, canvas size).
    seed
        Seed of the weight initialisation; the global torch random state is left as it was.
    **hparams
        Fields of the head's config (see :func:`head_config`).

    Returns
    -------
    nn.Module
        A head mapping a batch dict to logits (batch, 2, side, side); it has ``.spec``, ``.config`` and
        ``.uses_features`` (False: the head reads only ``batch["image"]``).
    """
    config = head_config(name, **hparams)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _HEADS[name][1](spec, config)
