"""fit-head with decoded images kept in RAM (`--memory-gib`, default 4) against reading them every epoch (0).

Both sides train the same head on the same cache in child processes, one after the other; the heads must come out
equal (the budget changes where the bytes come from, not which). Prints each side's wall time and peak RSS and
their ratios. Needs a store with the source extracted (the shipped backbone's 512 px cache for the README figure):

    .venv/bin/python bench/fit_head_keep.py --store /path/to/store --source DRIVE --epochs 10
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(store: str, source: str, key: str | None, out: Path, epochs: int, memory_gib: float) -> None:
    """Train in this process; print `wall_s peak_kib`."""
    from dgss.aggregate.training import HeadTrainingConfig, fit_head

    started = time.perf_counter()
    fit_head(store, source.split(","), out, HeadTrainingConfig(epochs=epochs), key=key,
             keep_bytes=int(memory_gib * 2**30))
    print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def same_heads(first: Path, second: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    a, b = load_file(first / "head_00.safetensors"), load_file(second / "head_00.safetensors")
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--source", default="DRIVE")
    parser.add_argument("--key")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--memory-gib", type=float, default=4.0, help="the kept side's budget")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-gib", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.store, args.source, args.key, args.child, args.epochs, args.child_gib)
        return
    print(f"fit-head defaults, {args.epochs} epochs, source {args.source}, store {args.store}")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, gib in (("streamed", 0.0), ("kept", args.memory_gib)):
            out = Path(scratch) / name
            command = [sys.executable, __file__, "--store", args.store, "--source", args.source,
                       "--epochs", str(args.epochs), "--child", str(out), "--child-gib", str(gib)]
            command += ["--key", args.key] if args.key else []
            wall, peak = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-2:]
            results[name] = (float(wall), int(peak) / 1024)
            print(f"{name:>9} (--memory-gib {gib:g}): {float(wall):7.1f} s, peak RSS {int(peak) / 1024:8.0f} MiB")
        equal = same_heads(Path(scratch) / "streamed", Path(scratch) / "kept")
    print(f"streamed / kept wall: {results['streamed'][0] / results['kept'][0]:.2f}x; kept / streamed peak RSS: "
          f"{results['kept'][1] / results['streamed'][1]:.2f}x; heads equal: {equal}")


if __name__ == "__main__":
    main()
