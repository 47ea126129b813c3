"""Time of one T&S-FreqAgg training step with each of the release's options (run by hand, not a test).

    .venv/bin/python bench/head_option_step.py [--steps 5] [--threads 1] [--device cpu]

One step is what `fit-head` does per batch at its defaults: 2 images x 2 windows of 128 canvas px, width 64, kernel
channels 64, on the shipped backbone's default cache layout (mid_block 128 ch, up_blocks.0 128 ch, up_blocks.1
64 ch; Haar maps of 32, 64 and 128 px on a 512 px canvas; 8 timesteps); random features, so the time excludes the
cache read. Forward, loss, backward and Adam step; the median over --steps after one warm-up step. Rows: today's
default; fusion=freqfusion-full; residual_norm=timestep; both; and each phase of phases=experts-then-gate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dgss.aggregate.heads import build_head
from dgss.aggregate.phases import Phase, enter_phase, trainable_parameters
from dgss.aggregate.spec import CacheSpec
from dgss.aggregate.training import phase_loss

DEFAULT_SPEC = {
    "blocks": [{"name": "mid_block", "channels": 128, "height": 64, "width": 64, "level": "coarse"},
               {"name": "up_blocks.0", "channels": 128, "height": 128, "width": 128, "level": "middle"},
               {"name": "up_blocks.1", "channels": 64, "height": 256, "width": 256, "level": "fine"}],
    "timesteps": [0, 3, 13, 25, 125, 250, 500, 875], "bands": "haar", "canvas_size": 512}
WINDOW, WINDOWS = 128, 4
ROWS = [("default", {}, Phase.joint),
        ("fusion=freqfusion-full", {"fusion": "freqfusion-full"}, Phase.joint),
        ("residual_norm=timestep", {"residual_norm": "timestep"}, Phase.joint),
        ("both", {"fusion": "freqfusion-full", "residual_norm": "timestep"}, Phase.joint),
        ("phases: experts", {}, Phase.experts),
        ("phases: gate", {}, Phase.gate)]


def window_batch(spec: CacheSpec, device: torch.device) -> dict[str, torch.Tensor]:
    """Random features, image, labels and FOV of WINDOWS windows of WINDOW canvas px."""
    generator = torch.Generator().manual_seed(0)
    batch = {}
    for block in spec.blocks:
        side = WINDOW // spec.stride(block)
        shape = (WINDOWS, len(spec.timesteps), len(spec.band_names), block.channels, side, side)
        batch[spec.feature_key(block)] = torch.randn(shape, generator=generator)
    batch["image"] = torch.rand(WINDOWS, 3, WINDOW, WINDOW, generator=generator)
    batch["vessel"] = torch.rand(WINDOWS, WINDOW, WINDOW, generator=generator) < 0.1
    batch["fov"] = torch.ones(WINDOWS, WINDOW, WINDOW, dtype=torch.bool)
    return {name: value.to(device) for name, value in batch.items()}


def step_seconds(spec: CacheSpec, params: dict, phase: Phase, steps: int, device: torch.device) -> float:
    head = build_head("tsfreqagg", spec, **params).to(device)
    enter_phase(head, phase)
    optimizer = torch.optim.Adam(trainable_parameters(head, phase), lr=2e-3)
    batch = window_batch(spec, device)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = phase_loss(head, batch, phase, 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec, device = CacheSpec.from_dict(DEFAULT_SPEC), torch.device(args.device)
    baseline = None
    for name, params, phase in ROWS:
        seconds = step_seconds(spec, params, phase, args.steps, device)
        baseline = baseline or seconds
        print(f"{name:26s} {seconds:7.3f} s/step  x{seconds / baseline:.2f}", flush=True)


if __name__ == "__main__":
    main()
