"""Extraction benchmark (run by hand, not a test): passes, time, bytes and Dask scaling, measured in one run.

    python bench/extract_bench.py [--images 8] [--size 256] [--model PATH] [--threads 1] [--timestep-batch K]
                                  [--batching-only]

Prints, side by side:
- UNet passes per image for each mode (anchored must equal the number of timesteps);
- seconds per image of anchored extraction with one network call per timestep against K timesteps per call (default:
  all in one call), the same images interleaved, with --threads torch threads (UNet passes only: the rest of the
  per-image work is the same on both sides); --batching-only stops after this;
- seconds per image (one process, one thread);
- bytes per image on disk against the DiffDGSSv2 release's layout (one float32 .npy per timestep, block and
  image; target: at most 1/4 of it);
- throughput of 2 Dask workers x 1 thread against 1 worker x 1 thread (target >= 1.7x).
Without --model a random backbone of the `tiny` preset architecture at --size is used (bytes then measure a random
network's activations, which compress worse than a trained one's).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dgss.backbone.loading import load_backbone
from dgss.datasets import get_dataset
from dgss.extract.extractor import FeatureExtractor, make_config
from dgss.extract.features import DEFAULT_INVERSION_STEPS, default_timestep_batch, extract_features
from dgss.extract.preprocess import image_tensor, to_canvas
from dgss.pipelines.allocator import reuse_freed_memory
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.pretrain.presets import BackboneTrainingConfig, build_saved_scheduler, build_unet
from dgss.store import FeatureStore

NPY_HEADER_BYTES = 128


def random_backbone(folder: Path, size: int) -> Path:
    """A randomly initialised `tiny`-preset UNet with sample size `size`, saved as a diffusers folder."""
    config = BackboneTrainingConfig.from_preset("tiny", image_size=size)
    torch.manual_seed(0)
    build_unet(config).save_pretrained(folder)
    build_saved_scheduler(config).save_config(folder)
    return folder


def passes_per_mode(model: str, dataset: str) -> dict[str, int]:
    """Network passes one image costs in each mode (ddim along the default fine path, noised with 4 draws)."""
    backbone = load_backbone(model)
    sample = get_dataset(dataset).read(get_dataset(dataset).ids()[0])
    config = make_config(backbone)
    image = image_tensor(to_canvas(sample.image, sample.vessel, sample.fov, canvas_size=config.input_size).image)
    counts = {}
    modes = (("anchored", "anchored", {}),
             (f"ddim ({DEFAULT_INVERSION_STEPS} steps)", "ddim", {"inversion_steps": DEFAULT_INVERSION_STEPS}),
             ("noised (4 draws)", "noised", {"draws": 4}))
    for name, mode, options in modes:
        features = extract_features(backbone, image, blocks=config.blocks, timesteps=config.timesteps, mode=mode,
                                    seed=0, **options)
        counts[name] = features.passes
    counts["timesteps"] = len(config.timesteps)
    return counts


def batching_seconds(model: str, dataset: str, timestep_batch: int | None) -> dict[str, float | int]:
    """Seconds per image of anchored extraction with one call per timestep and with `timestep_batch` timesteps per
    call (None: all), on the same canvases, alternating image by image so that load drifts hit both sides alike."""
    backbone = load_backbone(model)
    config = make_config(backbone)
    reader = get_dataset(dataset)
    images = [_canvas_tensor(reader.read(image_id), config.input_size) for image_id in reader.ids()]
    group = timestep_batch or len(config.timesteps)

    def run(image: torch.Tensor, steps_per_call: int) -> tuple[float, dict[str, torch.Tensor]]:
        start = time.perf_counter()
        features = extract_features(
            backbone, image, blocks=config.blocks, timesteps=config.timesteps, timestep_batch=steps_per_call
        )
        return time.perf_counter() - start, features.maps

    run(images[0], 1), run(images[0], group)  # warm-up: first calls set up kernels for their shapes
    single, batched, difference, scale = 0.0, 0.0, 0.0, 0.0
    for image in images:
        (one_seconds, one_maps), (group_seconds, group_maps) = run(image, 1), run(image, group)
        single, batched = single + one_seconds, batched + group_seconds
        difference = max(difference, *((group_maps[name] - maps).abs().max().item() for name, maps in one_maps.items()))
        scale = max(scale, *(maps.abs().max().item() for maps in one_maps.values()))
    return {
        "input_size": config.input_size,
        "timesteps": len(config.timesteps),
        "group": group,
        "default_group": default_timestep_batch(backbone.encode(images[0])),
        "single": single / len(images),
        "batched": batched / len(images),
        "relative_difference": difference / scale,
    }


def _canvas_tensor(sample, size: int) -> torch.Tensor:
    """A dataset sample as the (1, rgb, size, size) model input the extractor would give the UNet."""
    return image_tensor(to_canvas(sample.image, sample.vessel, sample.fov, canvas_size=size).image)


def release_bytes_per_image(model: str) -> int:
    """Bytes the release's layout takes for one image: float32 full block maps, one .npy per (timestep, block)."""
    backbone = load_backbone(model)
    extractor = FeatureExtractor(backbone, make_config(backbone))
    steps = len(extractor.config.timesteps)
    return sum(steps * (info.channels * info.height * info.width * 4 + NPY_HEADER_BYTES) for info in extractor.blocks)


def timed_extraction(model: str, dataset: str, store: Path, workers: int, mantissa_bits: int) -> float:
    """Wall seconds to extract every image of `dataset` into a fresh store."""
    start = time.perf_counter()
    run_extraction(
        ExtractionRequest(
            dataset=dataset, store=store, model=model, workers=workers, mantissa_bits=mantissa_bits, command="bench"
        )
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", type=str, default=None)
    parser.add_argument("--mantissa-bits", type=int, default=5, help="float16 mantissa bits kept (10: lossless)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the batching comparison")
    parser.add_argument("--timestep-batch", type=int, default=None, help="timesteps per batched call (default all)")
    parser.add_argument("--batching-only", action="store_true", help="stop after the batching comparison")
    args = parser.parse_args()
    reuse_freed_memory()  # as the `dgss` command does
    dataset = f"SYNTH-A-{args.images}x{args.size}"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = args.model or str(random_backbone(root / "model", args.size))
        torch.set_num_threads(args.threads)
        batching = batching_seconds(model, dataset, args.timestep_batch)
        print_batching(batching, dataset, args.model or "random tiny preset", args.threads)
        if args.batching_only:
            return
        torch.set_num_threads(1)
        passes = passes_per_mode(model, dataset)
        bits = args.mantissa_bits
        serial = timed_extraction(model, dataset, root / "serial.zarr", workers=0, mantissa_bits=bits)
        one = timed_extraction(model, dataset, root / "one.zarr", workers=1, mantissa_bits=bits)
        two = timed_extraction(model, dataset, root / "two.zarr", workers=2, mantissa_bits=bits)
        info = FeatureStore(root / "serial.zarr", create=False).entries()[0]
        ours = info.bytes_stored / args.images
        release = release_bytes_per_image(model)

    print(f"dataset {dataset}, model {args.model or 'random tiny preset'}, {args.mantissa_bits} mantissa bits, 1 thread")
    print("UNet passes per image: " + ", ".join(f"{mode} {count}" for mode, count in passes.items()))
    print(f"seconds per image (1 process, 1 thread): {serial / args.images:.2f}")
    print(
        f"bytes per image on disk: dgss {ours / 2**20:.2f} MiB (all arrays), release layout "
        f"{release / 2**20:.2f} MiB -> {ours / release:.3f} of it (target <= 0.25)"
    )
    print(f"compression ratio of the entry (raw / disk): {info.compression_ratio:.2f}x")
    print(
        f"Dask throughput: 1 worker x 1 thread {args.images / one:.2f} img/s, 2 workers x 1 thread "
        f"{args.images / two:.2f} img/s -> {one / two:.2f}x (target >= 1.7x; includes cluster start-up)"
    )
    assert np.isfinite(ours)


def print_batching(result: dict[str, float | int], dataset: str, model: str, threads: int) -> None:
    """The batching comparison, with the settings it was measured under."""
    steps, group = result["timesteps"], result["group"]
    print(
        f"anchored timestep batching: dataset {dataset}, model {model}, {result['input_size']} px input, "
        f"{steps} timesteps, {threads} torch thread(s)"
    )
    print(
        f"seconds per image: one call per timestep ({steps} calls) {result['single']:.3f}, {group} timesteps per "
        f"call ({-(-steps // group)} calls) {result['batched']:.3f} -> {result['single'] / result['batched']:.2f}x "
        f"(default at this size: {result['default_group']} per call); max |difference| / max |feature| "
        f"{result['relative_difference']:.1e}"
    )


if __name__ == "__main__":
    main()
