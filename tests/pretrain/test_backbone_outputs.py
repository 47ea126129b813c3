"""What a backbone run shows a person: samples beside real crops of the pool at the same scale, the loss curve and a
model card that links both."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from diffusers import UNet2DModel
from PIL import Image

from dgss.plotting import SERIES_COLOURS
from dgss.pretrain.outputs import loss_plot, sample_images
from dgss.pretrain.pool import ImagePool, real_crops
from dgss.pretrain.presets import BackboneTrainingConfig
from dgss.pretrain.training import train_backbone

SYNTH = "SYNTH-A-4x64"  # its training split: the first 2 images
LABEL = 20  # height of the label strip above each row
SCALE = 4  # 32 px crops are shown enlarged to 128 px
GAP = 4  # between tiles


def _config(**overrides) -> BackboneTrainingConfig:
    fields = dict(resolution=32, image_size=40, block_out_channels=(8, 16), steps=4, checkpoint_every=2,
                  batch_size=2, sample_count=3, sample_steps=3)
    return BackboneTrainingConfig.from_preset("tiny", **{**fields, **overrides})


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_backbone(_config(), [SYNTH], tmp_path_factory.mktemp("outputs") / "fundus-test")


def _row(picture: np.ndarray, row: int, column: int) -> np.ndarray:
    """Tile `column` of row `row` (0: real, 1: samples), shrunk back to the crop's pixels."""
    top = row * (LABEL + 32 * SCALE) + LABEL
    left = column * (32 * SCALE + GAP)
    tile = picture[top : top + 32 * SCALE, left : left + 32 * SCALE]
    return tile[::SCALE, ::SCALE]


def test_the_card_defaults_draw_enough_samples_with_enough_steps():
    config = BackboneTrainingConfig.from_preset("tiny")
    assert (config.sample_count, config.sample_steps) == (8, 250)


def test_samples_vs_real_shows_pool_crops_above_the_saved_model_s_samples(run):
    with Image.open(run / "samples_vs_real.png") as opened:
        picture = np.asarray(opened.convert("RGB"))
    assert picture.shape == (2 * (LABEL + 32 * SCALE), 3 * 32 * SCALE + 2 * GAP, 3)
    config = _config()
    real = real_crops(ImagePool([SYNTH], None, config.image_size), config, 3)
    samples = sample_images(UNet2DModel.from_pretrained(run), config, 3)  # the EMA weights of the last step
    for column in range(3):
        assert np.array_equal(_row(picture, 0, column), real[column])
        assert np.array_equal(_row(picture, 1, column), samples[column])
    with Image.open(run / "samples" / "step-00000004.png") as grid:
        assert np.array_equal(np.asarray(grid)[:32, :32], samples[0])


def test_real_crops_are_training_crops_the_same_at_every_checkpoint():
    """Each crop is a window of the training crop size cut from a FOV square at the training image size (so at the
    scale the model learns), possibly flipped, and the set does not change between checkpoints."""
    config = _config()
    pool = ImagePool([SYNTH], None, config.image_size)
    crops = real_crops(pool, config, 4)  # more crops than the pool's 2 images
    assert crops.shape == (4, 32, 32, 3) and np.array_equal(crops, real_crops(pool, config, 4))
    windows = [np.ascontiguousarray(square[top : top + 32, left : left + 32][:, ::flip])
               for square in (pool.square(0), pool.square(1)) for top in range(9) for left in range(9)
               for flip in (1, -1)]
    assert all(any(np.array_equal(crop, window) for window in windows) for crop in crops)


def test_the_loss_curve_falls_when_the_loss_falls(run):
    with Image.open(run / "loss.png") as opened:
        assert opened.size == (640, 400)
    picture = np.asarray(loss_plot(list(np.geomspace(1.0, 0.01, 500))))
    line = np.argwhere(np.all(picture == SERIES_COLOURS[0], axis=-1))
    left, right = line[line[:, 1] < line[:, 1].min() + 20], line[line[:, 1] > line[:, 1].max() - 20]
    assert left[:, 0].mean() < right[:, 0].mean()  # image rows grow downwards


def test_the_model_card_links_its_pictures_and_says_how_the_samples_were_drawn(run):
    card = (run / "MODEL_CARD.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert links == ["samples_vs_real.png", "loss.png"] and all((run / link).is_file() for link in links)
    assert card.startswith("# fundus-test:")
    assert "3 samples of the EMA weights at step 4 (3 DDPM" in card
    assert "32 px from FOV squares resized to 40 px" in card
    assert f"`{SYNTH}`: 2 images" in card and "steps: 4 of 4," in card and "final loss" in card
    assert "in 1 piece(s)" in card and "steps 0 to 4" in card and "Appearance target" in card
