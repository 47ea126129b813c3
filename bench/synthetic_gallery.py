"""Write docs/synthetic_domains.png: a few images of each synthetic domain beside their vessel masks.

So that a README reader sees the domain shift between SYNTH-A, -B and -C at a glance. Run from the repository root:
``.venv/bin/python bench/synthetic_gallery.py [--out PATH] [--count N] [--size PX]``.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dgss.datasets.synthetic import SYNTHETIC_DOMAINS, generate_fundus

_LABEL_WIDTH = 110


def render_gallery(count: int, size: int) -> Image.Image:
    """One row per domain: (image, vessel mask) pairs for indices 0..count-1, labelled with the dataset it imitates."""
    rows = []
    for domain, style in SYNTHETIC_DOMAINS.items():
        tiles = []
        for index in range(count):
            image, vessel, _ = generate_fundus(domain, index, size)
            tiles += [image, np.repeat(vessel[..., None], 3, axis=2).astype(np.uint8) * 255]
        row = Image.fromarray(np.concatenate(tiles, axis=1))
        label = Image.new("RGB", (_LABEL_WIDTH, size), "white")
        ImageDraw.Draw(label).text((8, size // 2 - 14), f"SYNTH-{domain}\nlike {style.like}", fill="black")
        rows.append(np.concatenate([np.asarray(label), np.asarray(row)], axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/synthetic_domains.png"))
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    render_gallery(args.count, args.size).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
