"""Backbones loaded from the tiny random model of tests/conftest.py, in both diffusers folder layouts."""

from pathlib import Path

import numpy as np
import pytest
from diffusers import DDIMScheduler, UNet2DModel
from PIL import Image

from dgss.extract.backbone import Backbone, load_backbone

@pytest.fixture(scope="session")
def extract_pipeline_dir(tmp_path_factory: pytest.TempPathFactory, extract_model_dir: Path) -> Path:
    """A pipeline-style folder (unet/ + scheduler/) whose model predicts x0 ("sample")."""
    folder = tmp_path_factory.mktemp("extract_pipeline")
    UNet2DModel.from_pretrained(extract_model_dir).save_pretrained(folder / "unet")
    DDIMScheduler(num_train_timesteps=1000, prediction_type="sample").save_config(folder / "scheduler")
    return folder


@pytest.fixture(scope="session")
def extract_backbone(extract_model_dir: Path) -> Backbone:
    return load_backbone(extract_model_dir)


@pytest.fixture(scope="session")
def extract_x0_backbone(extract_pipeline_dir: Path) -> Backbone:
    return load_backbone(extract_pipeline_dir)


@pytest.fixture
def photo_pool(tmp_path: Path) -> Path:
    """A flat folder of three small unlabelled RGB photos, a pool a backbone can train on."""
    pool = tmp_path / "pool"
    pool.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(40, 255, (40, 48, 3), dtype=np.uint8)).save(pool / f"{i}.png")
    return pool
