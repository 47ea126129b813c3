"""The backbone recipes dgss compares and ships, in one table: fundus-pool-v1's, and one change of it per candidate.

bench/backbone_sweep.py trains each candidate for the same CPU time and scores it with the linear probe;
bench/train_shipped_backbone.py --recipe NAME then trains the winner long. A candidate changes one thing of v1's
recipe (crop128-vpred: one thing of the crop128 winner's), so that its gain (or loss) can be read as that change's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BASELINE = "v1"

# fundus-pool-v1 (backbone/models/fundus-pool-v1), over the `tiny` preset: a four-level UNet (no attention, so the
# default coarse/middle/fine blocks sit at strides 8, 4, 2) on 64 px crops cut from 512 px FOV squares, the scale
# features are extracted at, so that it learns vessels at their real width.
V1_RECIPE: dict[str, Any] = dict(
    block_out_channels=(32, 64, 64, 128),
    layers_per_block=1,
    norm_num_groups=8,
    resolution=64,
    image_size=512,
    batch_size=16,
    lr=2e-4,
    ema_decay=0.999,
    prediction_type="epsilon",
    seed=0,
)


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One recipe of the sweep: what it changes from v1 (for the table) and the fields that change it."""

    change: str
    overrides: dict[str, Any] = field(default_factory=dict)
    # A cosine rate needs the run's length: this candidate trains as many steps as the named one reached in the
    # same budget (same architecture, so about the same CPU time).
    steps_of: str | None = None


CANDIDATES: dict[str, Candidate] = {
    BASELINE: Candidate(change="baseline: fundus-pool-v1's recipe"),
    "wide": Candidate(change="twice the channels (64/128/128/256)",
                      overrides=dict(block_out_channels=(64, 128, 128, 256))),
    "deep": Candidate(change="2 res blocks per level", overrides=dict(layers_per_block=2)),
    "attention": Candidate(change="self-attention at the lowest resolution (stride 8; 4 heads)",
                           overrides=dict(attention_levels=(3,), attention_head_dim=32)),
    "crop128": Candidate(change="128 px crops, batch 4 (the same pixels per step)",
                         overrides=dict(resolution=128, batch_size=4)),
    "x0": Candidate(change="predicts x0 (sample), as in the paper", overrides=dict(prediction_type="sample")),
    "cosine": Candidate(change="cosine rate to 0 after 100 warm-up steps, over v1's steps",
                        overrides=dict(lr_schedule="cosine", lr_warmup_steps=100), steps_of=BASELINE),
    # The cosine noise schedule ends at near-zero signal (alpha_bar = 2e-9 at t = 999), where an epsilon target
    # says nothing of the image: fundus-pool-v2's samples take their colours from clipping there. v stays posed.
    "vpred": Candidate(change="predicts v (sqrt(a) eps - sqrt(1 - a) x0)",
                       overrides=dict(prediction_type="v_prediction")),
    # fundus-pool-v2's CHASE_DB1 probe Dice stopped rising at step 4,005 (1.37 CPU h): is the plateau the capacity's?
    "crop128-deep": Candidate(change="crop128 (fundus-pool-v2's recipe) with 2 res blocks per level",
                              overrides=dict(resolution=128, batch_size=4, layers_per_block=2)),
    "crop128-vpred": Candidate(change="crop128 (fundus-pool-v2's recipe), predicting v",
                               overrides=dict(resolution=128, batch_size=4, prediction_type="v_prediction")),
}


def recipe(name: str) -> dict[str, Any]:
    """The `BackboneTrainingConfig` fields candidate `name` sets over the `tiny` preset (v1's plus its change)."""
    return {**V1_RECIPE, **CANDIDATES[name].overrides}
