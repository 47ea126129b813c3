"""A tiny random backbone saved as a diffusers folder, and small synthetic datasets, for the pipeline tests."""

from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel


@pytest.fixture(scope="session")
def pipelines_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-level UNet2DModel (no attention) with a DDIM scheduler config, epsilon prediction, T = 1000."""
    folder = tmp_path_factory.mktemp("pipelines_model")
    torch.manual_seed(0)
    UNet2DModel(
        sample_size=32,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 3,
        up_block_types=("UpBlock2D",) * 3,
        norm_num_groups=8,
        add_attention=False,
    ).save_pretrained(folder)
    DDIMScheduler(num_train_timesteps=1000, clip_sample=False).save_config(folder)
    return folder
