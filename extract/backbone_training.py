"""Train a pixel-space DDPM backbone on unlabelled fundus photos, resumably and reproducibly.

There is no public retinal diffusion checkpoint, so users train their own. Every random draw of step `s` (which
images, crops, flips, noise, timesteps) comes from generators seeded by `(seed, s)`, so a run interrupted at a
checkpoint and resumed gives the same weights as one that never stopped: a checkpoint only has to hold the model,
the EMA copy, the optimizer and the step. The output folder is a diffusers `save_pretrained` folder (EMA weights +
a DDIM scheduler config) that `dgss extract --model` loads as is.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from PIL import Image
from tqdm.auto import tqdm

from dgss.extract.appearance import AppearanceMeter, AppearanceTarget, save_appearance
from dgss.extract.device import check_device
from dgss.extract.backbone_presets import (
    RESUMABLE_FIELDS,
    BackboneTrainingConfig,
    build_noise_scheduler,
    build_saved_scheduler,
    build_unet,
)
from dgss.extract.datasets import DatasetReader, derive_fov, get_dataset, read_image, source_ids
from dgss.extract.datasets.image_io import IMAGE_SUFFIXES, is_image_file
from dgss.store.errors import ConfigMismatchError, DatasetError, RunError

TRAINING_FILE = "training.json"
CHECKPOINT_DIR = "checkpoints"


class ImagePool:
    """The training images of all sources, decoded on first use and cached as FOV squares at the crop size.

    A source is a dataset name (its source split; labels are never read) or a flat folder of photos (FOV derived
    from the image). The cache holds `size * size * 3` bytes per image (170 MB for 2,755 images at 144 px, the
    pool size of 128 px training).
    """

    def __init__(self, sources: Sequence[str], data_root: str | Path | None, size: int) -> None:
        self.size = size
        self.counts: dict[str, int] = {}
        self._loaders: list[functools.partial[tuple[np.ndarray, np.ndarray]]] = []
        for source in sources:
            loaders = _source_loaders(source, data_root)
            self.counts[source] = len(loaders)
            self._loaders.extend(loaders)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._loaders)

    def square(self, index: int) -> np.ndarray:
        """Image `index` FOV-cropped, padded to a square and resized: (size, size, 3) uint8."""
        if index not in self._cache:
            image, fov = self._loaders[index]()
            self._cache[index] = _fov_square(image, fov, self.size)
        return self._cache[index]

    def appearance_target(self) -> AppearanceTarget:
        """FOV colour statistics of every image of the pool (each square kept for training).

        Computed once before step 0 and kept in the checkpoints: counting only the images a process happened to
        decode would give a resumed run other statistics, and so its backbone another cache key.
        """
        meter = AppearanceMeter()
        for index, load in enumerate(self._loaders):
            image, fov = load()
            meter.add(image, fov)
            self._cache.setdefault(index, _fov_square(image, fov, self.size))
        return meter.target()


def _source_loaders(source: str, data_root: str | Path | None) -> list[functools.partial]:
    """One zero-argument loader per image of `source`, returning (image (y,x,3) uint8, fov (y,x) bool)."""
    folder = Path(source)
    if folder.is_dir():
        files = sorted(path for path in folder.iterdir() if is_image_file(path))
        if not files:
            raise DatasetError(
                f"image folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "point --source at a flat folder of fundus photos"
            )
        return [functools.partial(_load_file, path) for path in files]
    if os.sep in source and not source.startswith("folder:"):  # a path, not a dataset name
        raise DatasetError(f"image folder {source} does not exist; pass an existing folder or a dataset name")
    reader = get_dataset(source, data_root)
    ids = source_ids(reader)
    if not ids:
        raise DatasetError(f"dataset {source} has no images to train on; check its folder under the data root")
    return [functools.partial(_load_sample, reader, image_id) for image_id in ids]


def _load_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = read_image(path)
    return image, derive_fov(image)


def _load_sample(reader: DatasetReader, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    sample = reader.read(image_id)
    return sample.image, sample.fov


def _fov_square(image: np.ndarray, fov: np.ndarray, size: int) -> np.ndarray:
    """Crop to the FOV's bounding box, pad to a centred square with black, resize to (size, size, 3) uint8.

    This is the framing extraction uses (FOV crop, aspect kept, padded), so the backbone trains on what it will see.
    An empty FOV (a photo without a dark surround that the threshold rejects) keeps the whole frame.
    """
    if fov.any():
        rows, cols = np.flatnonzero(fov.any(axis=1)), np.flatnonzero(fov.any(axis=0))
        image = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = image.shape[:2]
    side = max(height, width)
    canvas = np.zeros((side, side, 3), np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = image
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.LANCZOS))


def _step_rng(seed: int, step: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, step, stream])


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, count]).permutation(count)


def training_batch(pool: ImagePool, config: BackboneTrainingConfig, step: int) -> torch.Tensor:
    """The images of training step `step`: a pure function of (seed, step), so resuming replays the same data.

    Images are drawn without replacement in per-epoch permutations, then randomly cropped to the resolution
    from FOV squares of `image_size` (the scale features are later extracted at) and flipped left-right.

    Returns
    -------
    torch.Tensor
        (batch, rgb, resolution, resolution) float32 in [-1, 1].
    """
    count, size, res = len(pool), pool.size, config.resolution
    positions = step * config.batch_size + np.arange(config.batch_size)
    indices = [int(_epoch_order(config.seed, int(p // count), count)[p % count]) for p in positions]
    rng = _step_rng(config.seed, step, 0)
    offsets = rng.integers(0, size - res + 1, size=(config.batch_size, 2))
    flips = rng.random(config.batch_size) < 0.5
    crops = []
    for index, (top, left), flip in zip(indices, offsets, flips):
        crop = pool.square(index)[top : top + res, left : left + res]
        crops.append(crop[:, ::-1] if flip else crop)
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(crops))).permute(0, 3, 1, 2)
    return batch.float() / 127.5 - 1.0


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(_step_rng(seed, step, 1).integers(2**62)))


def _build_training_state(config: BackboneTrainingConfig, device: torch.device
                          ) -> tuple[UNet2DModel, UNet2DModel, torch.optim.Optimizer]:
    """Model initialised from the seed alone (global RNG untouched), its EMA copy and the optimizer."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_unet(config)
    model.to(device).train()
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    return model, ema, optimizer


def _restore(checkpoint: Path, model: UNet2DModel, ema: UNet2DModel, optimizer: torch.optim.Optimizer,
             device: torch.device) -> dict:
    """Load a checkpoint into the training state; returns its step, loss history, wall time and appearance."""
    saved = torch.load(checkpoint, map_location=device, weights_only=True)
    model.load_state_dict(saved["model"])
    ema.load_state_dict(saved["ema"])
    optimizer.load_state_dict(saved["optimizer"])
    state = {"step": saved["step"], "losses": saved["losses"], "wall_s": saved["wall_s"]}
    if "appearance" in saved:  # checkpoints written before dgss kept the statistics have none
        state["appearance"] = saved["appearance"]
    return state


def _train_step(model: UNet2DModel, optimizer: torch.optim.Optimizer, scheduler: DDPMScheduler,
                config: BackboneTrainingConfig, clean: torch.Tensor, step: int) -> float:
    """One denoising step on (batch, rgb, y, x) images; noise and timesteps drawn from (seed, step)."""
    device = next(model.parameters()).device
    generator = _step_generator(config.seed, step)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, config.num_train_timesteps, (clean.shape[0],), generator=generator)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    target = noise if config.prediction_type == "epsilon" else clean
    with _autocast(device):
        prediction = model(noisy.to(device), timesteps.to(device)).sample
    loss = F.mse_loss(prediction.float(), target.to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return loss.item()


def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """EMA with the usual warm-up (decay grows as (1+s)/(10+s)), so short runs still move the average."""
    rate = 1.0 - min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for averaged, current in zip(ema.parameters(), model.parameters()):
            averaged.lerp_(current, rate)


def _check_out_dir(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; choose a folder for the model")
    if not resume and out.is_dir() and any(out.iterdir()):
        raise RunError(f"--out {out} is not empty; pass --resume to continue its training or choose another folder")


def _check_resume(out: Path, config: BackboneTrainingConfig, sources: list[str]) -> None:
    saved_path = out / TRAINING_FILE
    if not saved_path.is_file():
        raise RunError(
            f"--resume: {saved_path} is missing; {out} is not a train-diffusion output, run without --resume"
        )
    saved = json.loads(saved_path.read_text())
    if saved["sources"] != sources:
        raise ConfigMismatchError(f"--resume: {out} was trained on sources {saved['sources']}, not {sources}")
    wanted = config.to_dict()
    for name, value in saved["config"].items():
        if name not in RESUMABLE_FIELDS and wanted[name] != value:
            raise ConfigMismatchError(
                f"--resume: {name} was {value!r} in {saved_path}, now {wanted[name]!r}; pass the same value"
            )


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / CHECKPOINT_DIR).glob("step-*.pt"))
    return found[-1] if found else None


def _save_checkpoint(out: Path, state: dict, keep: int) -> None:
    """Write atomically (temp file, then rename) so an interrupt never leaves a half-written latest checkpoint."""
    folder = out / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"step-{state['step']:08d}.pt"
    temporary = target.with_suffix(".pt.tmp")
    torch.save(state, temporary)
    os.replace(temporary, target)
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        old.unlink()


@torch.no_grad()
def sample_images(model: UNet2DModel, config: BackboneTrainingConfig, count: int) -> np.ndarray:
    """Draw `count` images with a few DDIM steps (fixed noise, so grids of successive checkpoints compare).

    Returns
    -------
    np.ndarray
        (sample, y, x, rgb) uint8.
    """
    scheduler = DDIMScheduler.from_config(
        build_saved_scheduler(config).config, clip_sample=True, timestep_spacing="trailing"
    )
    scheduler.set_timesteps(config.sample_steps)
    device = next(model.parameters()).device
    shape = (count, 3, config.resolution, config.resolution)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(config.seed)).to(device)
    for t in scheduler.timesteps:
        with _autocast(device):
            prediction = model(x, t).sample
        x = scheduler.step(prediction.float(), t, x).prev_sample
    pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def _save_grid(images: np.ndarray, path: Path) -> None:
    """Tile (sample, y, x, rgb) uint8 images into a near-square PNG grid."""
    count, height, width, _ = images.shape
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    grid = np.zeros((rows * height, columns * width, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (the ADM preset needs it for speed and batch size); plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA, bf16 autocast)"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu} ({os.cpu_count()} cores), {torch.get_num_threads()} torch threads, fp32"


def _write_model_card(out: Path, config: BackboneTrainingConfig, counts: dict[str, int], state: dict,
                      n_params: int, hardware: str) -> None:
    losses = state["losses"]
    final_loss = float(np.mean(losses[-100:])) if losses else float("nan")
    attention = ", ".join(f"{r} px" for r in config.attention_resolutions()) or "no level"
    data = "\n".join(f"- `{source}`: {count} images" for source, count in counts.items())
    card = f"""# Diffusion backbone (dgss train-diffusion)

Unconditional pixel-space DDPM trained on unlabelled fundus photographs (no labels read), for `dgss extract --model`.

## Architecture
- diffusers `UNet2DModel`, preset `{config.preset}`, {n_params / 1e6:.2f} M parameters
- block_out_channels {list(config.block_out_channels)}, {config.layers_per_block} res blocks per level, \
self-attention at {attention}, scale-shift norm {config.scale_shift_norm}, resblock up/down {config.resnet_updown}
- cosine noise schedule (`squaredcos_cap_v2`), T = {config.num_train_timesteps}, predicts \
`{config.prediction_type}`; saved scheduler: DDIM, unclipped
- weights: EMA (decay {config.ema_decay}) of the trained parameters

## Data
{data}
- FOV-cropped, padded square, resized to {config.image_size} px, random {config.resolution} px \
crops and left-right flips

## Training
- steps: {state['step']} of {config.steps}, batch {config.batch_size}, resolution {config.resolution}, \
AdamW lr {config.lr}, grad clip {config.grad_clip}, seed {config.seed}
- final loss (mean of the last {min(len(losses), 100)} steps): {final_loss:.5f}
- wall time: {state['wall_s'] / 3600:.2f} h ({state['wall_s']:.0f} s)
- hardware: {hardware}

Full recipe: `{TRAINING_FILE}`; loss per step: `loss.csv`; samples per checkpoint: `samples/`.
"""
    (out / "MODEL_CARD.md").write_text(card)


def _write_outputs(out: Path, config: BackboneTrainingConfig, ema: UNet2DModel, state: dict,
                   pool: ImagePool, hardware: str) -> None:
    """Everything a checkpoint leaves for users: loadable EMA model + scheduler + appearance target, samples,
    loss, card."""
    ema.save_pretrained(out)
    build_saved_scheduler(config).save_pretrained(out)
    save_appearance(out, AppearanceTarget.from_dict(state["appearance"]))
    _save_grid(sample_images(ema, config, config.sample_count), out / "samples" / f"step-{state['step']:08d}.png")
    rows = "".join(f"{i + 1},{loss:.6f}\n" for i, loss in enumerate(state["losses"]))
    (out / "loss.csv").write_text("step,loss\n" + rows)
    _write_model_card(out, config, pool.counts, state, sum(p.numel() for p in ema.parameters()), hardware)


def train_backbone(config: BackboneTrainingConfig, sources: Sequence[str], out_dir: str | Path,
                   resume: bool = False, *, data_root: str | Path | None = None) -> Path:
    """Train (or continue training) a diffusion backbone and save it as a diffusers folder.

    Parameters
    ----------
    config
        Architecture and training recipe; on `resume` it must match the saved one except in RESUMABLE_FIELDS
        (e.g. a larger `steps` continues a finished run).
    sources
        Dataset names (their source split is used; only images and FOV masks are read) and/or paths of flat
        folders of images.
    out_dir
        Empty or new folder; receives the EMA model (`config.json`, weights, `scheduler_config.json`),
        `training.json`, `MODEL_CARD.md`, `loss.csv`, `samples/` and `checkpoints/`.
    resume
        Continue from the latest checkpoint in `out_dir/checkpoints`.
    data_root
        Where the named datasets live (default: $DGSS_DATA_ROOT, else ./data).

    Returns
    -------
    Path
        `out_dir`, loadable with `UNet2DModel.from_pretrained` and `DDIMScheduler.from_pretrained`.
    """
    out = Path(out_dir)
    # Folders by absolute path, so that a resume from another working directory sees the same sources.
    sources = [str(Path(source).resolve()) if Path(source).is_dir() else source for source in sources]
    if not sources:
        raise DatasetError("no training source given; pass dataset names or image folders with --source")
    _check_out_dir(out, resume)
    checkpoint = None
    if resume:
        checkpoint = _latest_checkpoint(out)
        if checkpoint is None:
            raise RunError(f"--resume: no checkpoint in {out / CHECKPOINT_DIR}; run without --resume to start over")
        _check_resume(out, config, sources)
    device = torch.device(check_device(config.device))

    pool = ImagePool(sources, data_root, config.image_size)
    model, ema, optimizer = _build_training_state(config, device)
    state: dict = {"step": 0, "losses": [], "wall_s": 0.0}
    if checkpoint is not None:
        state = _restore(checkpoint, model, ema, optimizer, device)
        if state["step"] > config.steps:
            raise RunError(f"--resume: {checkpoint.name} is past --steps {config.steps}; pass more steps")
    else:
        out.mkdir(parents=True, exist_ok=True)
        record = {"config": config.to_dict(), "sources": sources, "images": pool.counts}
        (out / TRAINING_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if "appearance" not in state:
        state["appearance"] = pool.appearance_target().to_dict()

    scheduler = build_noise_scheduler(config)
    hardware = _hardware(device)
    started = time.perf_counter() - state["wall_s"]
    progress = tqdm(total=config.steps, initial=state["step"], desc="train-diffusion", unit="step", disable=None)
    for step in range(state["step"], config.steps):
        loss = _train_step(model, optimizer, scheduler, config, training_batch(pool, config, step), step)
        _update_ema(ema, model, config.ema_decay, step)
        state["losses"].append(loss)
        state["step"] = step + 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4f}")
        if state["step"] % config.checkpoint_every == 0 or state["step"] == config.steps:
            state["wall_s"] = time.perf_counter() - started
            _save_checkpoint(out, {**state, "model": model.state_dict(), "ema": ema.state_dict(),
                                   "optimizer": optimizer.state_dict()}, config.keep_checkpoints)
            _write_outputs(out, config, ema, state, pool, hardware)
    progress.close()
    return out
