"""Train a pixel-space DDPM backbone on unlabelled fundus photos, resumably and reproducibly, in pieces.

There is no public retinal diffusion checkpoint, so users train their own. Every random draw of step `s` (which
images, crops, flips, noise, timesteps) comes from generators seeded by `(seed, s)`, so a run stopped at any step
and resumed gives the same weights as one that never stopped: the checkpoint only has to hold the model, the EMA
copy, the optimizer and the step. A time budget stops a run cleanly after the step that spends it, so a long
training runs as pieces of whatever time a machine offers. The output folder is a diffusers `save_pretrained`
folder (EMA weights + a DDIM scheduler config) that `dgss extract --model` loads as is.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from dgss.device import check_device
from dgss.errors import DatasetError, RunError
from dgss.files import write_bytes_atomic
from dgss.pretrain.checkpoint import CHECKPOINT_DIR, find_checkpoint, load_checkpoint, save_checkpoint
from dgss.pretrain.outputs import TRAINING_FILE, write_outputs
from dgss.pretrain.pool import ImagePool, step_rng, training_batch
from dgss.pretrain.presets import (
    RESUMABLE_FIELDS,
    SCHEDULE_FIELDS,
    BackboneTrainingConfig,
    build_noise_scheduler,
    build_unet,
    crop_photometric,
    crop_zoom,
    learning_rate,
)
from dgss.progress import Progress, log_file

__all__ = ["ImagePool", "train_backbone", "training_batch"]

# What a time budget counts: wall-clock seconds, or this process's CPU seconds (all its threads), which stay equal
# between runs that share a machine with other work.
_BUDGET_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(step_rng(seed, step, 1).integers(2**62)))


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
    """Load a checkpoint into the training state; returns its step, losses, wall time, pieces and appearance."""
    saved = load_checkpoint(checkpoint, device)
    model.load_state_dict(saved["model"])
    ema.load_state_dict(saved["ema"])
    optimizer.load_state_dict(saved["optimizer"])
    state = {"step": saved["step"], "losses": saved["losses"], "wall_s": saved["wall_s"]}
    # Checkpoints written before dgss recorded the pieces have none: their steps count as one piece.
    state["pieces"] = saved.get("pieces", [
        {"start": 0, "end": saved["step"], "wall_s": saved["wall_s"], "hardware": "hardware not recorded"}
    ])
    if "appearance" in saved:  # checkpoints written before dgss kept the statistics have none
        state["appearance"] = saved["appearance"]
    return state


_TARGETS = {
    "epsilon": lambda scheduler, clean, noise, timesteps: noise,
    "sample": lambda scheduler, clean, noise, timesteps: clean,
    "v_prediction": lambda scheduler, clean, noise, timesteps: scheduler.get_velocity(clean, noise, timesteps),
}


def _train_step(model: UNet2DModel, optimizer: torch.optim.Optimizer, scheduler: DDPMScheduler,
                config: BackboneTrainingConfig, clean: torch.Tensor, step: int) -> float:
    """One denoising step on (batch, rgb, y, x) images; noise, timesteps and learning rate a function of
    (seed, step)."""
    device = next(model.parameters()).device
    generator = _step_generator(config.seed, step)
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, config.num_train_timesteps, (clean.shape[0],), generator=generator)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    target = _TARGETS[config.prediction_type](scheduler, clean, noise, timesteps)
    with _autocast(device):
        prediction = model(noisy.to(device), timesteps.to(device)).sample
    loss = F.mse_loss(prediction.float(), target.to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    optimizer.step()
    return loss.item()


def _report_checkpoint(progress: Progress, state: dict, config: BackboneTrainingConfig, out: Path) -> None:
    """One progress line per checkpoint (a log line off a terminal, the bar's figures on one): the mean loss of the
    steps since the last one; stdout keeps the run's outcome only."""
    recent = state["losses"][-config.checkpoint_every:]
    progress.report(mean_loss=f"{sum(recent) / len(recent):.4f} over the last {len(recent)} steps",
                    checkpoint=f"saved in {out}")


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


def _check_resume(out: Path, config: BackboneTrainingConfig, pool: ImagePool) -> BackboneTrainingConfig:
    """Refuse to continue with other data or another recipe than the run started with (RESUMABLE_FIELDS and the
    schedule aside: see _check_schedule); returns the recorded config."""
    saved_path = out / TRAINING_FILE
    if not saved_path.is_file():
        raise RunError(
            f"--resume: {saved_path} is missing; {out} is not a train-diffusion output, run without --resume"
        )
    saved = json.loads(saved_path.read_text())
    recorded = BackboneTrainingConfig.complete_record(saved["config"])
    sources = list(pool.counts)
    # Fingerprints name the files, not the folder: a run folder copied to another machine finds its pool there.
    # Runs recorded before dgss kept them compare the source names.
    if "fingerprints" in saved:
        same = list(saved["fingerprints"].values()) == list(pool.fingerprints.values())
    else:
        same = saved["sources"] == sources
    if not same:
        raise RunError(
            f"--resume: {out} was trained on {saved['images']}, not on {pool.counts} as found now; pass the same "
            "sources in the same order (a folder may move, but must hold the same files)"
        )
    wanted = config.to_dict()
    for name, value in recorded.items():
        if name in wanted and name not in RESUMABLE_FIELDS | SCHEDULE_FIELDS and wanted[name] != value:
            raise RunError(
                f"--resume: {name} was {value!r} in {saved_path}, now {wanted[name]!r}; pass the same value"
            )
    return BackboneTrainingConfig.from_dict(recorded)


def _check_schedule(recorded: BackboneTrainingConfig, config: BackboneTrainingConfig, trained_steps: int,
                    saved_path: Path) -> None:
    """Refuse a schedule that would have given any step already trained another learning rate or other crops: the
    weights would then be those of no run that never stopped."""
    for step in range(trained_steps):
        before = learning_rate(recorded, step), crop_zoom(recorded, step), crop_photometric(recorded, step)
        now = learning_rate(config, step), crop_zoom(config, step), crop_photometric(config, step)
        if before != now:
            changed = ", ".join(f"{name} {getattr(recorded, name)!r} -> {getattr(config, name)!r}"
                                for name in sorted(SCHEDULE_FIELDS) if getattr(recorded, name) != getattr(config, name))
            raise RunError(
                f"--resume: {changed} (from {saved_path}) changes step {step}, already trained at learning rate "
                f"{before[0]:.3g}, zoom {before[1]}, photometric {before[2]} (now {now[0]:.3g}, {now[1]}, {now[2]}); "
                f"keep the schedule of the {trained_steps} trained steps (a constant run may add a cool-down or "
                "augmentations that start after them)"
            )


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


def train_backbone(config: BackboneTrainingConfig, sources: Sequence[str], out_dir: str | Path,
                   resume: bool = False, *, data_root: str | Path | None = None,
                   time_budget_s: float | None = None, budget_clock: Literal["wall", "cpu"] = "wall") -> Path:
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
        `training.json`, `MODEL_CARD.md`, `samples_vs_real.png`, `loss.csv`, `loss.png`, `log.txt`, `samples/` and
        `checkpoints/latest.pt`.
    resume
        Continue from the checkpoint in `out_dir/checkpoints` (also on another machine, with the sources there;
        from step 0 if the run stopped before its first checkpoint).
    data_root
        Where the named datasets live (default: $DGSS_DATA_ROOT, else ./data).
    time_budget_s
        Seconds this call may train, counted from its start (pool loading included). Once spent, training stops
        after the current step (at least one per call) with a checkpoint and the outputs written at that step,
        and one line says so; `resume` continues exactly. Writing them takes extra time: sampling
        `config.sample_count` images with `config.sample_steps` ancestral (DDPM) steps.
    budget_clock
        What `time_budget_s` counts: "wall" seconds, or "cpu" seconds of this process (all threads), which give
        runs on a shared machine equal compute. Every piece records both (`wall_s`, `cpu_s`) in the checkpoint.

    Returns
    -------
    Path
        `out_dir`, loadable with `UNet2DModel.from_pretrained` and `DDIMScheduler.from_pretrained`.
    """
    call_started, cpu_started = time.perf_counter(), time.process_time()
    clock = _BUDGET_CLOCKS[budget_clock]
    budget_started = clock()
    out = Path(out_dir)
    # Folders by absolute path, so that a resume from another working directory sees the same sources.
    sources = [str(Path(source).resolve()) if Path(source).is_dir() else source for source in sources]
    if not sources:
        raise DatasetError("no training source given; pass dataset names or image folders with --source")
    _check_out_dir(out, resume)
    checkpoint = find_checkpoint(out) if resume else None
    # A run stopped before its first checkpoint left only its record: resuming it starts again from step 0.
    if resume and checkpoint is None and not (out / TRAINING_FILE).is_file():
        raise RunError(f"--resume: no checkpoint in {out / CHECKPOINT_DIR}; run without --resume to start over")
    pool = ImagePool(sources, data_root, config.image_size)
    recorded = _check_resume(out, config, pool) if resume else None
    device = torch.device(check_device(config.device))

    model, ema, optimizer = _build_training_state(config, device)
    state: dict = {"step": 0, "losses": [], "wall_s": 0.0, "pieces": []}
    if checkpoint is not None:
        state = _restore(checkpoint, model, ema, optimizer, device)
        if state["step"] > config.steps:
            raise RunError(f"--resume: {out} is at step {state['step']}, past --steps {config.steps}; pass more steps")
        _check_schedule(recorded, config, state["step"], out / TRAINING_FILE)
    if recorded is None or recorded != config:  # the record says the recipe the next resume must agree with
        out.mkdir(parents=True, exist_ok=True)
        record = {"config": config.to_dict(), "sources": sources, "images": pool.counts,
                  "fingerprints": pool.fingerprints}
        write_bytes_atomic(out / TRAINING_FILE, (json.dumps(record, indent=2) + "\n").encode())
    if "appearance" not in state:  # before step 0, over the whole pool; then carried by every checkpoint
        state["appearance"] = pool.appearance_target().to_dict()

    scheduler = build_noise_scheduler(config)
    piece = {"start": state["step"], "end": state["step"], "wall_s": 0.0, "hardware": _hardware(device)}
    state["pieces"] = [*state["pieces"], piece]
    wall_before = state["wall_s"]
    with log_file(out), Progress(config.steps, "train-diffusion", "steps", initial=state["step"]) as progress:
        for step in range(state["step"], config.steps):
            loss = _train_step(model, optimizer, scheduler, config, training_batch(pool, config, step), step)
            _update_ema(ema, model, config.ema_decay, step)
            state["losses"].append(loss)
            state["step"] = step + 1
            progress.advance()
            spent = time.perf_counter() - call_started
            out_of_time = time_budget_s is not None and clock() - budget_started >= time_budget_s
            if state["step"] % config.checkpoint_every == 0 or state["step"] == config.steps or out_of_time:
                piece.update(end=state["step"], wall_s=spent, cpu_s=time.process_time() - cpu_started)
                state["wall_s"] = wall_before + spent
                save_checkpoint(out, {**state, "model": model.state_dict(), "ema": ema.state_dict(),
                                      "optimizer": optimizer.state_dict()})
                write_outputs(out, config, ema, state, pool)
                _report_checkpoint(progress, state, config, out)
            if out_of_time:
                break
    if state["step"] < config.steps:
        kind = "CPU-time budget" if budget_clock == "cpu" else "time budget"
        print(f"train-diffusion: {kind} of {time_budget_s / 60:.3g} min spent at step {state['step']} of "
              f"{config.steps}; checkpoint and model saved in {out}, --resume continues", flush=True)
    return out
