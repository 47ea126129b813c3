"""The `dgss extract` command that caches a dataset under the key of an existing entry or run.

A hint that leaves out an option the key depends on (`--model`, `--timesteps`, ...) sends the user to another key
and the same error; this one is built from the recorded extraction config, so following it gives that very key.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dgss.backbone.appearance import NONE, load_appearance
from dgss.backbone.shipped import backbone_reference, resolve_model
from dgss.errors import ModelError
from dgss.extract.config import ExtractionConfig
from dgss.extract.settings import ExtractionSettings


def extract_command(dataset: str, store: str, config: Mapping[str, Any], model: str | None) -> str:
    """`dgss extract --dataset DATASET --store STORE --model ... --blocks ... --timesteps ...` plus every option
    whose recorded value is not its default; `model` is the backbone the config was extracted with (None: left out,
    as for a store from before entries recorded it). The backbone's digest and appearance target come with
    `--model`."""
    words = ["dgss", "extract", "--dataset", dataset, "--store", store]
    if model:
        words += ["--model", backbone_reference(model)]
    recorded = ExtractionConfig.from_dict(config)  # fields under today's names, whatever the record calls them
    for name in ("blocks", "timesteps"):
        words += [f"--{name}", ",".join(str(value) for value in getattr(recorded, name))]
    for setting in ExtractionSettings.all():
        value = getattr(recorded, setting.name, setting.default)
        if value is None or value == setting.default:
            continue
        if setting.name == "canvas_size" and value == recorded.input_size:
            continue
        words += [setting.option, str(value)]
    if recorded.appearance is None and model and _has_pool_target(model):
        words += ["--appearance", NONE]  # extracted without the target the backbone carries
    return shlex.join(words)


def _has_pool_target(model: str) -> bool:
    """Whether `model` (a folder or shipped name here; a hub id is not looked up) carries an appearance target."""
    try:
        folder = Path(resolve_model(model))
    except ModelError:  # a model this machine does not have: nothing to compare with
        return False
    return folder.is_dir() and load_appearance(folder) is not None
