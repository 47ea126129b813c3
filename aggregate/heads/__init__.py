"""Segmentation heads registered by name; every head maps a batch to (batch, 2, side, side) logits
over the canvas or over a window of it.

``build_head(name, spec, seed=..., **hparams)`` is the one way to make a head: hyperparameters are the fields of
the head's frozen config dataclass (``head.config.to_dict()`` gives them back for saving), and the weights depend
only on the seed, not on the global random state.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, fields
from typing import Any

import torch
from torch import nn

from dgss.aggregate.heads.mlp import MLPConfig, MLPHead
from dgss.aggregate.heads.tsfreqagg import TSFreqAggConfig, TSFreqAggHead
from dgss.aggregate.heads.unet import UNetConfig, UNetHead
from dgss.aggregate.settings import HeadName
from dgss.aggregate.spec import CacheSpec
from dgss.errors import ModelError

_HEADS: dict[str, tuple[type, type[nn.Module]]] = {
    HeadName.mlp: (MLPConfig, MLPHead),
    HeadName.tsfreqagg: (TSFreqAggConfig, TSFreqAggHead),
    HeadName.unet: (UNetConfig, UNetHead),
}
HEAD_NAMES: tuple[str, ...] = tuple(sorted(str(name) for name in _HEADS))


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


def parse_head_params(name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` texts (``--head-param``) typed by the fields of head ``name``'s config (int, float, bool, tuple
    of int as ``8,4``) and checked by the config itself.

    Raises
    ------
    ModelError
        A pair that is not ``NAME=VALUE``, a name that is not one of the head's, or a value of the wrong type or out
        of range; the message lists the head's parameters with their types and defaults.
    """
    config_class = head_config(name).__class__
    types = typing.get_type_hints(config_class)
    valid = ", ".join(f"{field.name}={_described(types[field.name], field.default)}" for field in fields(config_class))
    params = {}
    for pair in pairs:
        key, sign, text = (part.strip() for part in pair.partition("="))
        if not sign or key not in types:
            raise ModelError(f"--head-param {pair!r}: head {name} takes NAME=VALUE with one of {valid}")
        try:
            params[key] = _typed(types[key], text)
        except ValueError:
            raise ModelError(f"--head-param {pair!r}: {key} must be {_type_name(types[key])}; head {name} takes "
                             f"{valid}") from None
    head_config(name, **params)  # the bounds: the config's own checks
    return params


def _typed(kind: Any, text: str) -> Any:
    """`text` as a value of the config field type `kind` (``none`` for an optional one's None); ValueError when it
    is not one."""
    if (inner := _optional(kind)) is not None:
        return None if text.lower() == "none" else _typed(inner, text)
    if kind is bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.lower() not in words:
            raise ValueError(text)
        return words[text.lower()]
    if kind is int:
        return int(text)
    if kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    if typing.get_origin(kind) is tuple:
        items = [item.strip() for item in text.strip("[]() ").split(",")]
        return tuple(int(item) for item in items)
    return text


def _optional(kind: Any) -> Any:
    """X for a field typed ``X | None``, else None."""
    given = typing.get_args(kind)
    return given[0] if len(given) == 2 and given[1] is type(None) else None


_TYPE_NAMES = {int: ("an integer", "INT"), float: ("a finite number", "FLOAT"), bool: ("true or false", "BOOL")}


def _type_name(kind: Any, metavar: bool = False) -> str:
    if (inner := _optional(kind)) is not None:
        return _type_name(inner, metavar) + ("|none" if metavar else " or none")
    if typing.get_origin(kind) is tuple:
        return "INT,INT,..." if metavar else "a comma list of integers"
    return _TYPE_NAMES.get(kind, ("text", "TEXT"))[metavar]


def _described(kind: Any, default: Any) -> str:
    if default is MISSING:
        return _type_name(kind, metavar=True)
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default).lower() \
        if isinstance(default, bool) else default
    return f"{_type_name(kind, metavar=True)} (default {shown})"


def fitted_head_params(name: str, hparams: dict[str, Any], images: Iterable[Any]) -> dict[str, Any]:
    """``hparams`` with what head ``name`` fixes from its training ``images`` (a config's ``fitted_to``, where it
    has one) added: recorded in the run, they are used alike at training and inference."""
    fitted_to = getattr(head_config(name, **hparams), "fitted_to", None)
    return hparams | (fitted_to(images) if fitted_to else {})


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
