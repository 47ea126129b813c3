"""Peak RSS of `fit_head` on a small and a large synthetic cache: streaming means they should match within ~10%.

Each size gets its own cache and its own child process (so one run's memory cannot hide in the other's peak);
the child reports its peak RSS (`ru_maxrss`) after training, and its RSS after importing torch and dgss as a
floor. Both runs stream every read (`--memory-gib 0`); at fit-head's default budget (4 GiB) images that fit are
kept in RAM, and peak memory then grows with the kept images up to the budget. Usage:

    .venv/bin/python bench/fit_head_memory.py                      # 10 vs 100 images, 128 px canvas
    .venv/bin/python bench/fit_head_memory.py --memory-gib 4       # fit-head's default budget
    .venv/bin/python bench/fit_head_memory.py --images 4 20 --canvas 64 --epochs 1
"""

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TIMESTEPS = [1, 10]
BANDS = ["LL", "LH", "HL", "HH"]


def build_cache(store_path: Path, images: int, canvas: int, channels: int) -> None:
    """An entry "BENCH" of `images` images: three haar blocks (canvas/4, /2, /1) of float16 noise + stripes."""
    from dgss.store import ArraySpec, FeatureStore

    blocks = [("up_blocks.0", canvas // 4, "coarse"), ("up_blocks.1", canvas // 2, "middle"),
              ("up_blocks.2", canvas, "fine")]
    arrays = {f"features/{name}": ArraySpec(shape=(len(TIMESTEPS), len(BANDS), channels, size // 2, size // 2),
                                            dtype="float16",
                                            dims=("timestep", "band", f"{name}.channel", f"{name}.y", f"{name}.x"))
              for name, size, _ in blocks}
    arrays["image"] = ArraySpec(shape=(canvas, canvas, 3), dtype="uint8", dims=("y", "x", "rgb"))
    arrays["vessel"] = ArraySpec(shape=(canvas, canvas), dtype="bool", dims=("y", "x"))
    arrays["fov"] = ArraySpec(shape=(canvas, canvas), dtype="bool", dims=("y", "x"))
    config = {"model_digest": "bench", "blocks": [name for name, _, _ in blocks], "timesteps": TIMESTEPS,
              "bands": "haar", "input_size": canvas, "canvas_size": canvas}
    entry = FeatureStore(store_path).require_entry(
        dataset="BENCH", config=config, image_ids=[f"b{i:04d}" for i in range(images)], splits=["all"] * images,
        arrays=arrays, coords={"timestep": TIMESTEPS, "band": BANDS},
        attrs={"blocks": [{"name": name, "channels": channels, "height": size, "width": size}
                          for name, size, _ in blocks],
               "levels": {level: [name] for name, _, level in blocks}})
    rng = np.random.default_rng(0)
    for index in range(images):
        vessel = np.zeros((canvas, canvas), dtype=bool)
        vessel[:, rng.integers(0, canvas, 4)] = True
        values = {name: rng.normal(size=spec.shape).astype(np.float16)
                  for name, spec in arrays.items() if name.startswith("features/")}
        values.update(image=np.full((canvas, canvas, 3), 128, dtype=np.uint8), vessel=vessel,
                      fov=np.ones((canvas, canvas), dtype=bool))
        entry.write_image(index, values)


def child(store: Path, out: Path, head: str, epochs: int, memory_gib: float) -> None:
    """Train in this process and print `floor_kib peak_kib`."""
    from dgss.aggregate.training import HeadTrainingConfig, fit_head

    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fit_head(store, ["BENCH"], out, HeadTrainingConfig(head=head, epochs=epochs, batch_size=2),
             keep_bytes=int(memory_gib * 2**30))
    print(floor, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--canvas", type=int, default=128)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--head", default="mlp")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--memory-gib", type=float, default=0.0, help="fit-head's --memory-gib (0: stream)")
    parser.add_argument("--child", nargs=2, type=Path, metavar=("STORE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.head, args.epochs, args.memory_gib)
        return
    from dgss.aggregate.training import HeadTrainingConfig

    settings = HeadTrainingConfig(head=args.head, epochs=args.epochs, batch_size=2).to_dict()
    print(f"canvas {args.canvas}, {args.channels} channels x 3 blocks; training settings {settings} (head defaults); "
          f"memory budget {args.memory_gib} GiB")
    print(f"{'images':>7} {'cache MiB':>10} {'floor MiB':>10} {'peak MiB':>9}")
    peaks = []
    with tempfile.TemporaryDirectory() as scratch:
        for images in args.images:
            store = Path(scratch) / f"store{images}"
            build_cache(store, images, args.canvas, args.channels)
            cache_mib = sum(path.stat().st_size for path in store.rglob("*") if path.is_file()) / 2**20
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(store), str(Path(scratch) / f"run{images}"),
                 "--head", args.head, "--epochs", str(args.epochs), "--memory-gib", str(args.memory_gib)],
                capture_output=True, text=True, check=True)
            floor, peak = (int(value) / 1024 for value in result.stdout.split()[-2:])
            peaks.append(peak)
            print(f"{images:>7} {cache_mib:>10.1f} {floor:>10.1f} {peak:>9.1f}")
    print(f"largest / smallest peak: {max(peaks) / min(peaks):.3f}")


if __name__ == "__main__":
    main()
