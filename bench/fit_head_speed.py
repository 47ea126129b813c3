"""Head training speed (run by hand, not a test): one epoch from the Zarr cache against recomputing the features.

    python bench/fit_head_speed.py [--images 6] [--size 256] [--model PATH] [--threads 1] [--head tsfreqagg]
                                   [--width 32] [--epochs 1]

A tool without a cache runs the UNet passes (one per timestep, 8 by default) for every image in every epoch; dgss
runs them once at extraction and then trains from the store. Both sides run the same `train_heads` loop on the
same images, after one warm-up epoch each; only the feature source differs (target: cache >= 20x faster per
epoch). The on-the-fly side wraps `CachedImages` and replaces its features, so it also reads (and drops) the
cached ones: its time is high by one cache read, which makes the printed ratio high by at most 1.
Without --model a random backbone of the `tiny` preset architecture at --size is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dgss.aggregate.data import CachedImages, feature_names, split_indices
from dgss.aggregate.spec import CacheSpec
from dgss.aggregate.training import SOURCE_SPLIT, HeadTrainingConfig, train_heads
from dgss.backbone.loading import load_backbone
from dgss.extract.config import ExtractionConfig
from dgss.extract.extractor import FeatureExtractor
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import Entry, FeatureStore
from extract_bench import random_backbone  # bench/ is on sys.path when a bench script runs


class RecomputedImages(Dataset):
    """`CachedImages` whose "features/<block>" tensors are recomputed from the cached canvas image on every access.

    This is what training costs without a feature cache: the UNet passes run again for each image in each epoch.
    """

    def __init__(self, cached: CachedImages, extractor: FeatureExtractor) -> None:
        self.cached = cached
        self.extractor = extractor

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        entry, index = self.cached.items[position]
        item = self.cached[position]
        fresh = self.extractor.feature_maps(entry.read("image", index), entry.read("fov", index))
        for name, maps in fresh.items():
            item[f"features/{name}"] = torch.from_numpy(maps.astype(np.float32))
        return item


def extract_cache(store: Path, model: str, images: int, size: int) -> Entry:
    """Extract a synthetic dataset of `images` images at `size` px with the default config; return its entry."""
    dataset = f"SYNTH-A-{images}x{size}"
    summary = run_extraction(ExtractionRequest(dataset=dataset, store=store, model=model, command="bench"))
    return FeatureStore(store, create=False).entry(dataset, summary.key)


def max_feature_difference(entry: Entry, extractor: FeatureExtractor, index: int) -> float:
    """Largest |recomputed - cached| feature value of one image over all blocks (0 when extraction is exact)."""
    fresh = extractor.feature_maps(entry.read("image", index), entry.read("fov", index))
    return max(float(np.abs(fresh[name.removeprefix("features/")].astype(np.float32)
                            - entry.read(name, index).astype(np.float32)).max())
               for name in feature_names(entry))


def seconds_per_epoch(images: Dataset, spec: CacheSpec, config: HeadTrainingConfig) -> float:
    """Wall seconds per epoch of `train_heads` over `config.epochs` epochs, after a one-epoch warm-up run.

    Each run writes its checkpoints into a fresh folder, so neither resumes the other.
    """
    with tempfile.TemporaryDirectory() as warm_up, tempfile.TemporaryDirectory() as timed:
        train_heads(images, spec, dataclasses.replace(config, epochs=1), Path(warm_up), {})
        start = time.perf_counter()
        train_heads(images, spec, config, Path(timed), {})
        return (time.perf_counter() - start) / config.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", help="diffusers UNet folder (default: random `tiny` preset at --size)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--head", default="tsfreqagg")
    parser.add_argument("--width", type=int, default=32, help="tsfreqagg width (ignored by other heads)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per side, after one warm-up epoch")
    parser.add_argument("--window", type=int, default=128, help="training window, canvas px (0: whole canvases)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or str(random_backbone(Path(scratch) / "model", args.size))
        entry = extract_cache(Path(scratch) / "store", model, args.images, args.size)
        _, indices = split_indices(entry, SOURCE_SPLIT)
        cached = CachedImages([(entry, index) for index in indices])
        extractor = FeatureExtractor(load_backbone(model), ExtractionConfig.from_dict(entry.config))
        spec = CacheSpec.from_entry_attrs(entry.config, entry.attrs)
        config = HeadTrainingConfig(head=args.head, epochs=args.epochs, window=args.window or None,
                                    head_params={"width": args.width} if args.head == "tsfreqagg" else {})
        print(f"{len(indices)} training image(s) of {entry.dataset}, {len(entry.config['timesteps'])} timesteps, "
              f"blocks {', '.join(entry.config['blocks'])}, head {args.head} width {args.width}, "
              f"window {args.window or 'whole canvas'}, {args.threads} thread(s)")
        difference = max_feature_difference(entry, extractor, indices[0])
        print(f"max |recomputed - cached| feature on image {entry.image_ids[indices[0]]}: {difference:.3g} "
              f"(store rounds float16 to {entry.config['mantissa_bits']} mantissa bits)")
        from_cache = seconds_per_epoch(cached, spec, config)
        on_the_fly = seconds_per_epoch(RecomputedImages(cached, extractor), spec, config)
    print(f"{'features':<12} {'s/epoch':>9}")
    print(f"{'cache':<12} {from_cache:>9.3f}")
    print(f"{'on the fly':<12} {on_the_fly:>9.3f}")
    print(f"cache is {on_the_fly / from_cache:.1f}x faster per epoch (target >= 20x)")


if __name__ == "__main__":
    main()
