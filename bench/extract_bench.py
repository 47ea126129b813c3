"""Extraction benchmark (run by hand, not a test): passes, time, bytes and Dask scaling, measured in one run.

    python bench/extract_bench.py [--images 8] [--size 256] [--model PATH]

Prints, side by side:
- UNet passes per image for each mode (anchored must equal the number of timesteps);
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

from dgss.extract.backbone import load_backbone
from dgss.extract.backbone_presets import BackboneTrainingConfig, build_saved_scheduler, build_unet
from dgss.extract.datasets import get_dataset
from dgss.extract.extractor import FeatureExtractor, make_config
from dgss.extract.features import extract_features
from dgss.extract.preprocess import image_tensor, to_canvas
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
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
    """Network passes one image costs in each mode (noised with an ensemble of 2)."""
    backbone = load_backbone(model)
    sample = get_dataset(dataset).read(get_dataset(dataset).ids()[0])
    config = make_config(backbone)
    image = image_tensor(to_canvas(sample.image, sample.vessel, sample.fov, canvas_size=config.input_size).image)
    counts = {}
    for mode, ensemble in (("anchored", 1), ("ddim", 1), ("noised", 2)):
        features = extract_features(
            backbone, image, blocks=config.blocks, timesteps=config.timesteps, mode=mode, ensemble=ensemble, seed=0
        )
        counts[f"{mode}" + (f" (ensemble {ensemble})" if ensemble > 1 else "")] = features.passes
    counts["timesteps"] = len(config.timesteps)
    return counts


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
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = f"SYNTH-A-{args.images}x{args.size}"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = args.model or str(random_backbone(root / "model", args.size))
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


if __name__ == "__main__":
    main()
