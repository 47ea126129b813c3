"""Tiny random diffusion backbones saved as diffusers folders (nothing can be downloaded here)."""

from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from dgss.extract.backbone import Backbone, load_backbone

EXTRACT_SIZE = 32


def _tiny_unet() -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=EXTRACT_SIZE,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 3,
        up_block_types=("UpBlock2D",) * 3,
        norm_num_groups=8,
        add_attention=False,
    )


@pytest.fixture(scope="session")
def extract_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A UNet2DModel folder with its scheduler_config.json beside it (epsilon prediction, T = 1000)."""
    folder = tmp_path_factory.mktemp("extract_model")
    _tiny_unet().save_pretrained(folder)
    DDIMScheduler(num_train_timesteps=1000, clip_sample=False).save_config(folder)
    return folder


@pytest.fixture(scope="session")
def extract_pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline-style folder (unet/ + scheduler/) whose model predicts x0 ("sample")."""
    folder = tmp_path_factory.mktemp("extract_pipeline")
    _tiny_unet().save_pretrained(folder / "unet")
    DDIMScheduler(num_train_timesteps=1000, prediction_type="sample").save_config(folder / "scheduler")
    return folder


@pytest.fixture(scope="session")
def extract_backbone(extract_model_dir: Path) -> Backbone:
    return load_backbone(extract_model_dir)


@pytest.fixture(scope="session")
def extract_x0_backbone(extract_pipeline_dir: Path) -> Backbone:
    return load_backbone(extract_pipeline_dir)
