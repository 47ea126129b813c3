"""Which decoder blocks can be tapped, their map sizes, and the coarse/middle/fine levels the head expects.

Blocks are read with forward hooks registered for the duration of a ``with`` block, so the model is never edited.
A hook records only the passes of the thread that registered it: a Dask worker running two images at once in two
threads on one shared network must not mix their maps.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from dgss.backbone.loading import Backbone
from dgss.errors import ModelError
from dgss.store.schema import LEVELS, BlockLayout

# Strides (input size / map size) the three levels aim at: 1/8, 1/4 and 1/2 of the input, as DiffDGSSv2 taps.
_LEVEL_STRIDES = (8, 4, 2)


def block_names(backbone: Backbone) -> list[str]:
    """Tappable decoder blocks in forward order: ``mid_block`` then ``up_blocks.0`` .. ``up_blocks.N``."""
    names = ["mid_block"] if getattr(backbone.network, "mid_block", None) is not None else []
    return names + [f"up_blocks.{index}" for index in range(len(backbone.network.up_blocks))]


def check_blocks(backbone: Backbone, names: Sequence[str]) -> None:
    """Raise ModelError naming the valid blocks if any name is not a tappable block (or none is given)."""
    valid = block_names(backbone)
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        what = f"unknown block {', '.join(unknown)}" if unknown else "no block given"
        raise ModelError(f"{what} in model {backbone.name}; valid blocks: {', '.join(valid)}")


@contextmanager
def tap_blocks(network: nn.Module, names: Sequence[str]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the outputs of the named submodules for every pass this thread runs inside the ``with`` block.

    Yields
    ------
    dict[str, list[torch.Tensor]]
        Per name, one (batch, channel, y, x) tensor per pass, in call order. Blocks returning a tuple
        (diffusers' down blocks: hidden state + residuals) contribute their first element.
    """
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    handles = []
    try:
        for name in names:
            module = network.get_submodule(name)
            handles.append(module.register_forward_hook(_make_recorder(outputs[name], threading.get_ident())))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _make_recorder(store: list[torch.Tensor], thread: int):
    """A forward hook appending the block's output map (detached) to ``store`` for passes run by ``thread``."""

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor | tuple) -> None:
        if threading.get_ident() == thread:
            store.append((output[0] if isinstance(output, tuple) else output).detach())

    return record


def list_blocks(backbone: Backbone, input_size: int) -> list[BlockLayout]:
    """Every tappable block with its channels and map size, measured with one dummy pass at ``input_size``."""
    names = block_names(backbone)
    sample = backbone.encode(torch.zeros(1, 3, input_size, input_size, device=backbone.device))
    with torch.no_grad(), tap_blocks(backbone.network, names) as outputs:
        try:
            backbone.predict(sample, torch.zeros(1, dtype=torch.long, device=backbone.device))
        except RuntimeError as error:
            raise ModelError(
                f"model {backbone.name} cannot run at input size {input_size} ({str(error).splitlines()[0]}); "
                "use a multiple of 2**(number of down blocks)"
            ) from error
    return [
        BlockLayout(name=name, channels=out[0].shape[1], height=out[0].shape[2], width=out[0].shape[3])
        for name, out in outputs.items()
    ]


def select_blocks(infos: Sequence[BlockLayout], names: Sequence[str]) -> list[BlockLayout]:
    """The infos of ``names``, in the given order."""
    by_name = {info.name: info for info in infos}
    return [by_name[name] for name in names]


def default_blocks(infos: Sequence[BlockLayout], input_size: int) -> list[str]:
    """One block per level: the decoder blocks whose stride is closest to 8 (coarse), 4 (middle) and 2 (fine).

    Blocks are grouped by stride (input size / map height); within a stride the last block in forward order (the
    most processed one) represents it. Strides are chosen nearest in log2 to 8, 4, 2, each used once, so a model
    with fewer than three resolutions yields fewer blocks.
    """
    by_stride: dict[float, str] = {}
    for info in infos:
        by_stride[input_size / info.height] = info.name
    chosen: list[float] = []
    for target in _LEVEL_STRIDES:
        left = [stride for stride in by_stride if stride not in chosen]
        if left:
            chosen.append(min(left, key=lambda stride: (abs(math.log2(stride / target)), stride)))
    return [by_stride[stride] for stride in sorted(chosen, reverse=True)]


def group_levels(infos: Sequence[BlockLayout]) -> dict[str, list[str]]:
    """Group blocks by map size into coarse (smallest map), middle and fine (largest map).

    With two distinct sizes the middle level is empty; with one, only the fine level is filled.

    Raises
    ------
    ModelError
        More than three distinct map sizes: the head fuses exactly three levels.
    """
    sizes = sorted({(info.height, info.width) for info in infos})
    if len(sizes) > 3:
        listed = ", ".join(f"{info.name} {info.height}x{info.width}" for info in infos)
        raise ModelError(f"blocks span {len(sizes)} map sizes ({listed}); choose blocks with at most 3 sizes")
    level_of_size = dict(zip(sizes, {1: ("fine",), 2: ("coarse", "fine"), 3: LEVELS}.get(len(sizes), ()), strict=True))
    levels: dict[str, list[str]] = {level: [] for level in LEVELS}
    for info in infos:
        levels[level_of_size[(info.height, info.width)]].append(info.name)
    return levels
