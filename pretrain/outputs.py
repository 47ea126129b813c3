"""What every checkpoint of a backbone run leaves for people: the loadable model, samples beside real crops, the loss
curve and a model card that ties them together.

A person judges a backbone by whether its samples look like the pool at the same scale (vessel width, contrast,
the FOV edge) and whether its loss has flattened; the card puts both in front of them with the recipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from PIL import Image, ImageDraw, ImageFont

from dgss.backbone.appearance import AppearanceTarget, save_appearance
from dgss.files import write_bytes_atomic
from dgss.plotting import draw_line_plot, write_png
from dgss.pretrain.pool import ImagePool, real_crops
from dgss.pretrain.presets import BackboneTrainingConfig, build_saved_scheduler

TRAINING_FILE = "training.json"
MODEL_CARD = "MODEL_CARD.md"
SAMPLES_VS_REAL = "samples_vs_real.png"
LOSS_CSV = "loss.csv"
LOSS_PNG = "loss.png"
SAMPLES_DIR = "samples"
_MIN_TILE = 128  # small crops are enlarged (nearest) so that a person can see vessels in them
_LABEL_HEIGHT = 20
_GAP = 4  # white pixels between tiles, so neighbouring crops do not read as one picture


@torch.no_grad()
def sample_images(model: UNet2DModel, config: BackboneTrainingConfig, count: int) -> np.ndarray:
    """Draw `count` images with `config.sample_steps` ancestral (DDPM) steps from fixed noise, so checkpoints
    compare.

    Stochastic steps, not deterministic DDIM: from a small or young model DDIM drifts to the mean colour and shows
    flat grey crops that misjudge it (fundus-pool-v2 at step 2917: pixel sd 0.11 after 50 DDIM steps, 0.31 after
    250 DDPM steps, with vessels and discs visible). In float32 on every device (no bf16 autocast): they judge the
    weights, and a few forward passes cost little.

    Returns
    -------
    np.ndarray
        (sample, y, x, rgb) uint8.
    """
    scheduler = DDPMScheduler.from_config(
        build_saved_scheduler(config).config, clip_sample=True, timestep_spacing="trailing"
    )
    scheduler.set_timesteps(config.sample_steps)
    device = next(model.parameters()).device
    shape = (count, 3, config.resolution, config.resolution)
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.randn(shape, generator=generator).to(device)
    for t in scheduler.timesteps:  # a CPU generator: diffusers draws on the CPU, so every device gets the same noise
        x = scheduler.step(model(x, t).sample, t, x, generator=generator).prev_sample
    pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def sample_grid(images: np.ndarray) -> Image.Image:
    """(sample, y, x, rgb) uint8 images tiled into a near-square grid."""
    count, height, width, _ = images.shape
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    grid = np.zeros((rows * height, columns * width, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = image
    return Image.fromarray(grid)


def samples_beside_real(real: np.ndarray, samples: np.ndarray, *, real_label: str, sample_label: str
                        ) -> Image.Image:
    """A labelled row of real crops above a labelled row of samples, each (image, y, x, rgb) uint8 of one size.

    Crops under 128 px are enlarged by a whole factor (nearest), so every pixel stays a visible square.
    """
    side = real.shape[1]
    tile = side * max(1, -(-_MIN_TILE // side))
    columns = max(len(real), len(samples))
    picture = Image.new("RGB", (columns * (tile + _GAP) - _GAP, 2 * (_LABEL_HEIGHT + tile)), "white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=13)
    for row, (images, label) in enumerate(((real, real_label), (samples, sample_label))):
        top = row * (_LABEL_HEIGHT + tile)
        draw.text((4, top + _LABEL_HEIGHT // 2), label, fill="black", font=font, anchor="lm")
        for column, image in enumerate(images):
            enlarged = Image.fromarray(image).resize((tile, tile), Image.Resampling.NEAREST)
            picture.paste(enlarged, (column * (tile + _GAP), top + _LABEL_HEIGHT))
    return picture


def loss_plot(losses: list[float]) -> Image.Image:
    """log10 of the loss, averaged over a sliding window of 1/50 of the steps (a single step's loss depends mostly
    on its random timesteps), against the step."""
    window = max(1, len(losses) // 50)
    totals = np.cumsum(np.concatenate([[0.0], np.asarray(losses, np.float64)]))
    ends = np.arange(1, len(losses) + 1)
    starts = np.maximum(ends - window, 0)
    means = (totals[ends] - totals[starts]) / (ends - starts)
    title = "training loss" + (f" (moving mean over {window} steps)" if window > 1 else "")
    return draw_line_plot([np.log10(np.maximum(means, 1e-12))], title=title, xlabel="step", ylabel="log10 loss")


def write_outputs(out: Path, config: BackboneTrainingConfig, ema: UNet2DModel, state: dict, pool: ImagePool
                  ) -> None:
    """Everything a checkpoint leaves for users: the loadable EMA model with its scheduler and appearance target,
    this checkpoint's samples (alone and beside real crops), the loss (CSV and curve) and the model card."""
    step = state["step"]
    ema.save_pretrained(out)
    build_saved_scheduler(config).save_pretrained(out)
    save_appearance(out, AppearanceTarget.from_dict(state["appearance"]))
    samples = sample_images(ema, config, config.sample_count)
    (out / SAMPLES_DIR).mkdir(exist_ok=True)
    write_png(out / SAMPLES_DIR / f"step-{step:08d}.png", sample_grid(samples))
    real = real_crops(pool, config, config.sample_count)
    write_png(out / SAMPLES_VS_REAL, samples_beside_real(
        real, samples,
        real_label=f"training pool: {len(real)} crops of {config.resolution} px from {config.image_size} px FOV "
                   "squares",
        sample_label=f"model at step {step}: {len(samples)} samples, {config.sample_steps} DDPM steps",
    ))
    rows = "".join(f"{i + 1},{loss:.6f}\n" for i, loss in enumerate(state["losses"]))
    write_bytes_atomic(out / LOSS_CSV, ("step,loss\n" + rows).encode())
    write_png(out / LOSS_PNG, loss_plot(state["losses"]))
    n_params = sum(p.numel() for p in ema.parameters())
    write_bytes_atomic(out / MODEL_CARD, model_card(out.name, config, pool.counts, state, n_params).encode())


def model_card(name: str, config: BackboneTrainingConfig, counts: dict[str, int], state: dict, n_params: int
               ) -> str:
    """MODEL_CARD.md: what the backbone is, what it saw, how long it trained and where, with its pictures."""
    losses = state["losses"]
    final_loss = float(np.mean(losses[-100:])) if losses else float("nan")
    attention = ", ".join(f"{r} px" for r in config.attention_resolutions()) or "no level"
    data = "\n".join(f"- `{source}`: {count} images" for source, count in counts.items())
    unfinished = "" if state["step"] >= config.steps else " (unfinished: `--resume` continues)"
    warmup = f", {config.lr_warmup_steps} warm-up steps" if config.lr_warmup_steps else ""
    cooldown = f", the last {config.lr_cooldown_steps} steps falling to 0" if config.lr_cooldown_steps else ""
    low, high = config.zoom_range
    zoom = "" if (low, high) == (1.0, 1.0) else f", cut at a zoom drawn log-uniformly from {low:g} to {high:g}"
    photometric = ", photometric changes (gamma, contrast, colour cast, blur, noise)" if config.photometric else ""
    augmented_from = f" (augmentations from step {config.augment_from_step} on)" if (
        (zoom or photometric) and config.augment_from_step) else ""
    pieces = "\n".join(
        f"  - steps {piece['start']} to {piece['end']}: {_duration(piece['wall_s'])} on {piece['hardware']}"
        for piece in state["pieces"]
    )
    appearance = AppearanceTarget.from_dict(state["appearance"])
    colours = ", ".join(f"{channel} {mean:.1f} / {std:.1f}"
                        for channel, mean, std in zip("RGB", appearance.mean, appearance.std))
    return f"""# {name}: diffusion backbone (dgss train-diffusion)

Unconditional pixel-space DDPM trained on unlabelled fundus photographs (no labels read), for `dgss extract --model`.

## Samples beside real crops
![real crops of the training pool above samples of the model]({SAMPLES_VS_REAL})

Top: {config.sample_count} crops of the training pool drawn as training draws them ({config.resolution} px from FOV \
squares resized to {config.image_size} px, the scale features are extracted at; random position, left-right flips). \
Bottom: {config.sample_count} samples of the EMA weights at step {state['step']} ({config.sample_steps} DDPM \
steps, the same noise at every checkpoint). A good backbone's samples show the same structures at the same \
scale: vessels of the same width and contrast, the FOV edge, parts of the optic disc.

## Training loss
![training loss against the step]({LOSS_PNG})

Per-step values: `{LOSS_CSV}`.

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
crops{zoom}{photometric} and left-right flips{augmented_from}

## Training
- steps: {state['step']} of {config.steps}{unfinished}, batch {config.batch_size}, resolution {config.resolution}, \
AdamW lr {config.lr} ({config.lr_schedule}{warmup}{cooldown}), grad clip {config.grad_clip}, seed {config.seed}
- final loss (mean of the last {min(len(losses), 100)} steps): {final_loss:.5f}
- wall time: {_duration(state['wall_s'])}, in {len(state['pieces'])} piece(s):
{pieces}

## Appearance target
`dgss_appearance.json`: per-channel mean / standard deviation inside the FOV over all pool images: {colours}. \
`dgss extract` matches every image to it before the UNet sees it.

Full recipe: `{TRAINING_FILE}`; samples of every checkpoint: `{SAMPLES_DIR}/` in the training run's folder.
"""


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
