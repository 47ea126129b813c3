"""Shared test fixtures. Fixture names carry the helper's prefix (``datasets_``, ...) so they never collide."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel
from PIL import Image

from dgss.backbone.loading import Backbone, load_backbone

DATASETS_SHAPE = (32, 40)  # (height, width) of the tiny fixture images


def _datasets_pixels(kind: str, shape: tuple[int, int]) -> np.ndarray:
    """A tiny fundus-like picture: a bright disc on black ("image"), a cross of vessels ("label"), the disc ("fov")."""
    height, width = shape
    y, x = np.mgrid[:height, :width]
    disc = (y - height / 2) ** 2 + (x - width / 2) ** 2 < (min(shape) / 2 - 1) ** 2
    if kind == "fov":
        return disc.astype(np.uint8) * 255
    vessels = disc & ((abs(y - height // 2) <= 1) | (abs(x - width // 2) <= 1))
    if kind == "label":
        return vessels.astype(np.uint8) * 255
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[disc] = (180, 90, 40)
    image[vessels] = (120, 40, 20)
    return image


@pytest.fixture
def datasets_write() -> Callable[..., Path]:
    """Write one fixture image file; the format follows the name (``.gz`` compresses, ``.jpg`` is lossy RGB)."""

    def write(
        path: Path, kind: str = "image", shape: tuple[int, int] = DATASETS_SHAPE, mode: str | None = None
    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(_datasets_pixels(kind, shape))
        if mode is not None:
            picture = picture.convert(mode)
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
        buffer = io.BytesIO()
        picture.save(buffer, format=Image.registered_extensions()[Path(name).suffix.lower()])
        data = buffer.getvalue()
        path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
        return path

    return write


@pytest.fixture
def datasets_tree(datasets_write: Callable[..., Path]) -> Callable[[Path, dict[str, str]], Path]:
    """Write a dataset folder from ``{relative path: kind}`` and return it."""

    def tree(root: Path, files: dict[str, str]) -> Path:
        for relative, kind in files.items():
            datasets_write(root / relative, kind)
        return root

    return tree


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models are latency-bound: one thread is faster than two contending ones, and results do not depend on
    how many other jobs share the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Tiny random diffusion backbones saved as diffusers folders (nothing can be downloaded here).
EXTRACT_SIZE = 32


def tiny_unet() -> UNet2DModel:
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
    tiny_unet().save_pretrained(folder)
    DDIMScheduler(num_train_timesteps=1000, clip_sample=False).save_config(folder)
    return folder


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


@pytest.fixture
def dgss_cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """Run the `dgss` console entry point in this process: `dgss_cli(*args)` gives (exit code, stdout, stderr)."""
    import sys

    from dgss.pipelines.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["dgss", *map(str, args)])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main()
        captured = capsys.readouterr()
        return exited.value.code, captured.out, captured.err

    return run
