"""Train (or continue) the backbone dgss ships, on the unlabelled fundus pool only (run by hand; resumable).

    OMP_NUM_THREADS=1 python bench/train_shipped_backbone.py --pool ../shared/pretrain/FUNDUS-POOL --out runs/shipped

The recipe is chosen for feature quality per unit of CPU: a four-level UNet (32, 64, 64, 128 channels, no
attention, so the default coarse/middle/fine blocks sit at strides 8, 4, 2) trained on 64 px crops cut from FOV
squares of 512 px, the scale features are extracted at, so it learns vessels at their real width. No evaluation dataset is read. Copy the output's EMA model into extract/backbones/ to ship it.
"""

import argparse
from pathlib import Path

from dgss.extract.backbone_presets import BackboneTrainingConfig
from dgss.extract.backbone_training import train_backbone

SHIPPED_RECIPE = dict(
    block_out_channels=(32, 64, 64, 128),
    layers_per_block=1,
    norm_num_groups=8,
    resolution=64,
    image_size=512,
    batch_size=16,
    lr=2e-4,
    ema_decay=0.999,
    prediction_type="epsilon",
    checkpoint_every=250,
    seed=0,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, required=True, help="flat folder of unlabelled fundus photos")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    config = BackboneTrainingConfig.from_preset("tiny", steps=args.steps, device=args.device, **SHIPPED_RECIPE)
    resume = (args.out / "checkpoints").is_dir()
    train_backbone(config, [str(args.pool)], args.out, resume=resume)


if __name__ == "__main__":
    main()
