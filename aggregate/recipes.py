"""Named training recipes: a measured set of `dgss fit-head` settings asked for by name (`--recipe NAME`) instead of
a line of options. Options given beside a recipe override its values. Torch-free, so `--help` can list them.

``unet-reference`` is the plain supervised U-Net that dgss's domain-generalization tables compare against: 1.9M
parameters (base 16, depth 4), the standardised green channel inside the FOV, 2,400 steps of 8 random 128 px
windows with random flips (19,200 windows, about 15x what the default fit sees), BCE + soft Dice, Adam with a
cosine rate from 1e-3, every source image trained on (no validation part: threshold 0.5, last step). On the 20
DRIVE training images that is 480 epochs of 5 steps.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Recipe(StrEnum):
    """The recipes by name."""

    unet_reference = "unet-reference"


RECIPES: dict[Recipe, dict[str, Any]] = {
    Recipe.unet_reference: {
        "head": "unet", "head_params": {"base_channels": 16, "depth": 4, "channels": "green"},
        "batch_size": 4, "windows_per_image": 2, "window": 128, "epochs": 480, "lr": 1e-3, "lr_schedule": "cosine",
        "dice_weight": 1.0, "flips": True, "validation_fraction": 0.0,
    },
}
"""Each recipe's `HeadTrainingConfig` fields; the rest keep their defaults."""


def recipe_settings(recipe: Recipe | None, given: dict[str, Any], head_params: dict[str, Any]) -> dict[str, Any]:
    """The config fields of `recipe` (None: none, the defaults apply) with the options the user `given` and the
    `head_params` they set laid over them; the recipe's head parameters are dropped where another head is given."""
    fields = dict(RECIPES[recipe]) if recipe is not None else {}
    recipe_params = fields.pop("head_params", {})
    same_head = given.get("head", fields.get("head")) == fields.get("head")
    return {**fields, **given, "head_params": {**(recipe_params if same_head else {}), **head_params}}
