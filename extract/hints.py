"""The `dgss extract` command that caches a dataset under the key of an existing entry or run.

A hint that leaves out an option the key depends on (`--model`, `--timesteps`, ...) sends the user to another key
and the same error; this one is built from the recorded extraction config, so following it gives that very key.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from dgss.backbone.shipped import backbone_reference
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
    return shlex.join(words)
