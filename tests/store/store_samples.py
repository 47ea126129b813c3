"""Tiny entries for the store tests: two blocks' features plus image, masks and geometry, deterministic per image;
and a runner for one store command."""

from collections.abc import Callable
from typing import Any

import numpy as np
import typer
from typer.testing import CliRunner, Result

from dgss.store import ArraySpec

IMAGE_IDS = ["im0", "im1", "im2", "im3"]
SPLITS = ["training", "training", "test", "test"]
CONFIG: dict[str, Any] = {"model_digest": "abc", "blocks": ["up.0", "up.1"], "timesteps": [1, 10], "bands": "haar"}
COORDS: dict[str, list[Any]] = {"timestep": [1, 10], "band": ["LL", "LH", "HL", "HH"], "rgb": ["R", "G", "B"]}
ARRAYS = {
    "features/up.0": ArraySpec(
        shape=(2, 4, 3, 32, 32), dtype="float16", dims=("timestep", "band", "up.0.channel", "up.0.y", "up.0.x")
    ),
    "features/up.1": ArraySpec(
        shape=(2, 4, 2, 4, 4), dtype="float16", dims=("timestep", "band", "up.1.channel", "up.1.y", "up.1.x")
    ),
    "image": ArraySpec(shape=(16, 16, 3), dtype="uint8", dims=("y", "x", "rgb")),
    "vessel": ArraySpec(shape=(16, 16), dtype="bool", dims=("y", "x")),
    "geometry": ArraySpec(shape=(6,), dtype="int64", dims=("geometry",)),
}


def entry_kwargs(**changes: Any) -> dict[str, Any]:
    """Arguments of `FeatureStore.require_entry` for the sample entry, with `changes` applied."""
    kwargs = {
        "dataset": "SYNTH-A",
        "config": CONFIG,
        "image_ids": IMAGE_IDS,
        "splits": SPLITS,
        "arrays": ARRAYS,
        "coords": COORDS,
        "attrs": {"model": "tiny-unet", "blocks": [{"name": "up.0"}, {"name": "up.1"}]},
    }
    return {**kwargs, **changes}


def image_arrays(index: int, arrays: dict[str, ArraySpec] = ARRAYS) -> dict[str, np.ndarray]:
    """Smooth (compressible) but image-specific values for every array of image `index`."""
    values = {}
    for name, spec in arrays.items():
        ramp = np.linspace(0.0, 1.0, int(np.prod(spec.shape))).reshape(spec.shape)
        if spec.dtype == "bool":
            values[name] = ramp > 0.5 - 0.1 * index
        elif spec.dtype == "uint8":
            values[name] = (ramp * 200 + index).astype(np.uint8)
        else:
            values[name] = (ramp * (index + 1)).astype(spec.dtype)
    return values


def invoke_alone(command: Callable[..., None], *args: str) -> Result:
    """Run one `dgss` command function on a group holding just it (a one-command typer app drops the name)."""
    cli = typer.Typer()
    cli.callback()(lambda: None)
    cli.command()(command)
    return CliRunner().invoke(cli, [command.__name__, *args])
