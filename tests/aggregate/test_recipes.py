"""Named recipes: one option instead of a line of them, and the options given beside it still win."""

import json

import numpy as np

from dgss.aggregate.data import head_image
from dgss.aggregate.heads import head_config
from dgss.aggregate.recipes import RECIPES, Recipe, recipe_settings
from dgss.aggregate.training import HeadTrainingConfig
from dgss.store import FeatureStore


def test_every_recipe_is_a_valid_training_config():
    for recipe, fields in RECIPES.items():
        config = HeadTrainingConfig(**recipe_settings(recipe, {}, {}))
        head_config(config.head, **config.head_params)
        assert config.head_params == fields["head_params"]


def test_the_reference_unet_recipe_is_the_strong_baseline():
    config = HeadTrainingConfig(**recipe_settings(Recipe.unet_reference, {}, {}))
    windows = 20 // config.batch_size * config.epochs * config.batch_size * config.windows_per_image
    assert config.head == "unet" and config.head_params["channels"] == "green" and windows == 19_200
    assert config.validation_fraction == 0 and config.flips and config.lr_schedule == "cosine"


def test_options_given_beside_a_recipe_override_it():
    fields = recipe_settings(Recipe.unet_reference, {"epochs": 3}, {"base_channels": 8})
    assert fields["epochs"] == 3 and fields["head_params"] == {"base_channels": 8, "depth": 4, "channels": "green"}
    assert recipe_settings(Recipe.unet_reference, {"head": "mlp"}, {})["head_params"] == {}
    assert recipe_settings(None, {"epochs": 3}, {}) == {"epochs": 3, "head_params": {}}


def test_fit_head_trains_the_recipe_named_on_the_command_line(aggregate_store, tmp_path, dgss_cli):
    code, _, err = dgss_cli("fit-head", "--source", "SRC", "--store", aggregate_store, "--out", tmp_path / "run",
                            "--recipe", "unet-reference", "--epochs", "1", "--head-param", "base_channels=4")
    assert code == 0, err
    training = json.loads((tmp_path / "run" / "run.json").read_text())["training"]
    assert training["head"] == "unet" and training["epochs"] == 1 and training["dice_weight"] == 1.0
    params = training["head_params"]
    assert {name: params[name] for name in ("base_channels", "depth", "channels")} == {
        "base_channels": 4, "depth": 4, "channels": "green"}
    entry = FeatureStore(aggregate_store, create=False).entry("SRC")  # standardised by its training images' green
    trained = json.loads((tmp_path / "run" / "run.json").read_text())["sources"]["SRC"]
    pixels = []
    for index in map(entry.image_ids.index, trained):
        fov = entry.read("fov", index).astype(bool)
        pixels.append(head_image(entry.read("image", index), fov, entry.config)[1].numpy()[fov])
    green = np.concatenate(pixels)
    assert np.isclose(params["green_mean"], green.mean(), atol=1e-5)
    assert np.isclose(params["green_std"], green.std(), atol=1e-5)
