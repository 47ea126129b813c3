"""T&S-FreqAgg does what the method says, not only what its shapes say: the time gate mixes per-timestep logits
with per-pixel weights over timesteps and learns to trust the timestep that carries the signal; FreqFusion's
upsampled coarse path is aligned with the fine map and carries information into the output.

Features are built in memory (no store): vessel-like bar masks on a 32 px canvas, noise features, and a signal
(the pooled mask) added to band LL, channel 0, of chosen timesteps and levels only.
"""

import pytest
import torch
import torch.nn.functional as F

from dgss.aggregate.heads import build_head
from dgss.aggregate.heads.freqfusion import AdaptiveUpsample, FreqFusion
from dgss.aggregate.heads.tsfreqagg import TimeGate
from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.aggregate.training import segmentation_loss

CANVAS = 32
TIMESTEPS = (10, 100, 500)
SIGNAL_STEP = 2  # not the middle one, which a gate that reverses the timesteps would leave in place


def _spec() -> CacheSpec:
    """A coarse block of 16 px and a fine block of 32 px (Haar maps of 8 and 16 px) on a 32 px canvas."""
    blocks = (BlockSpec(name="coarse_block", channels=2, height=16, width=16, level="coarse"),
              BlockSpec(name="fine_block", channels=2, height=32, width=32, level="fine"))
    return CacheSpec(blocks=blocks, timesteps=TIMESTEPS, bands="haar", canvas_size=CANVAS)


def _bars(generator: torch.Generator, block: int) -> torch.Tensor:
    """(CANVAS, CANVAS) bool: two horizontal and two vertical bars `block` px wide at multiples of `block`."""
    mask = torch.zeros(CANVAS, CANVAS, dtype=torch.bool)
    cells = CANVAS // block
    for axis in (0, 1):
        for cell in torch.randperm(cells - 1, generator=generator)[:2].tolist():
            if axis == 0:
                mask[cell * block:(cell + 1) * block] = True
            else:
                mask[:, cell * block:(cell + 1) * block] = True
    return mask


def _data(spec: CacheSpec, count: int, seed: int, *, signal_steps: tuple[int, ...], signal_levels: tuple[str, ...],
          block: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A batch of `count` images: features N(0, 1), plus +-1.5 (vessel / background, pooled to the map size) in
    LL channel 0 of `signal_steps` at `signal_levels`; and the (count, CANVAS, CANVAS) int64 vessel masks."""
    generator = torch.Generator().manual_seed(seed)
    vessel = torch.stack([_bars(generator, block) for _ in range(count)])
    batch = {}
    for spec_block in spec.blocks:
        features = torch.randn(count, *spec.feature_shape(spec_block), generator=generator)
        if spec_block.level in signal_levels:
            pooled = F.adaptive_avg_pool2d(vessel[:, None].float(), spec.level_size(spec_block.level))[:, 0]
            for step in signal_steps:
                features[:, step, 0, 0] += 3 * pooled - 1.5
        batch[spec.feature_key(spec_block)] = features
    batch["image"] = torch.zeros(count, 3, CANVAS, CANVAS)
    return batch, vessel.long()


def _balanced_accuracy(logits: torch.Tensor, vessel: torch.Tensor) -> float:
    """Mean of sensitivity and specificity: 0.5 for any constant prediction, whatever the vessel fraction."""
    called = logits.argmax(dim=1).bool()
    truth = vessel.bool()
    return float(((called & truth).sum() / truth.sum() + (~called & ~truth).sum() / (~truth).sum()) / 2)


def _dice(logits: torch.Tensor, vessel: torch.Tensor) -> float:
    called = logits.argmax(dim=1).bool()
    truth = vessel.bool()
    return float(2 * (called & truth).sum() / (called.sum() + truth.sum()))


def _train(head, batch, vessel, steps: int, lr: float = 1e-2) -> None:
    torch.manual_seed(0)  # dropout masks
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    head.train()
    for _ in range(steps):
        optimizer.zero_grad()
        segmentation_loss(head(batch), vessel, dice_weight=0.5).backward()
        optimizer.step()
    head.eval()


def test_the_time_gate_mixes_per_timestep_logits_with_per_pixel_weights_over_timesteps():
    torch.manual_seed(0)
    gate = TimeGate(num_timesteps=3)
    logits = torch.randn(2, 3, 2, 5, 7)  # (batch, timestep, class, y, x)
    mixed, weights = gate(logits)
    assert mixed.shape == (2, 2, 5, 7) and weights.shape == (2, 3, 5, 7)
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 5, 7))
    torch.testing.assert_close(mixed, (weights[:, :, None] * logits).sum(dim=1))
    assert weights.std(dim=(2, 3)).min() > 0  # per pixel, not one weight per image
    # a gate that always picks timestep 0 returns exactly that timestep's logits, for each class
    torch.nn.init.zeros_(gate.gate.weight)
    with torch.no_grad():
        gate.gate.bias.copy_(torch.tensor([30.0, -30.0, -30.0]))
    mixed, weights = gate(logits)
    torch.testing.assert_close(mixed, logits[:, 0])
    torch.testing.assert_close(weights[:, 0], torch.ones(2, 5, 7))


def test_training_moves_the_gate_towards_the_one_timestep_that_carries_the_signal():
    spec = _spec()
    batch, vessel = _data(spec, 6, seed=0, signal_steps=(SIGNAL_STEP,), signal_levels=("coarse", "fine"), block=2)
    held_out, held_vessel = _data(spec, 4, seed=1, signal_steps=(SIGNAL_STEP,), signal_levels=("coarse", "fine"),
                                  block=2)
    head = build_head("tsfreqagg", spec, seed=0, width=8, kernel_channels=4)
    with torch.no_grad():
        before = head.eval().forward_with_gates(held_out)[1].mean(dim=(0, 2, 3))
    _train(head, batch, vessel, steps=40)
    with torch.no_grad():
        logits, gates = head.forward_with_gates(held_out)
    after = gates.mean(dim=(0, 2, 3))
    assert before[SIGNAL_STEP] < 0.45  # no preference to begin with (1/3 each)
    assert after[SIGNAL_STEP] > 0.6 and after.argmax() == SIGNAL_STEP, after
    assert _dice(logits, held_vessel) > 0.7


def test_the_upsampled_coarse_path_is_aligned_with_the_fine_map():
    """An impulse at coarse pixel (i, j) lands, symmetric, around fine pixels 2i..2i+1, 2j..2j+1 (centroid
    2i + 0.5): a shifted, flipped or transposed reassembly moves it."""
    torch.manual_seed(0)
    upsample = AdaptiveUpsample(channels=1, kernel_channels=2)
    impulse = torch.zeros(1, 1, 8, 8)
    impulse[0, 0, 2, 5] = 1.0
    with torch.no_grad():
        up = upsample(impulse)[0, 0]
    assert up.shape == (16, 16)
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centroid = ((up * rows).sum() / up.sum(), (up * cols).sum() / up.sum())
    assert centroid[0] == pytest.approx(2 * 2 + 0.5, abs=0.05) and centroid[1] == pytest.approx(2 * 5 + 0.5, abs=0.05)
    peak = up[4:6, 10:12]  # the four fine pixels under the coarse one hold the peak
    outside = up.clone()
    outside[4:6, 10:12] = 0
    assert peak.min() > 0.95 * up.max() and outside.max() < 0.6 * up.max()


def test_freqfusion_adds_the_upsampled_coarse_map_the_smooth_map_and_the_high_pass_of_the_detail_map():
    torch.manual_seed(0)
    fusion = FreqFusion(channels=3, coarse_size=(4, 4), fine_size=(8, 8), kernel_channels=2)
    coarse, smooth, detail = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    zero_coarse, zero_fine = torch.zeros_like(coarse), torch.zeros_like(smooth)
    with torch.no_grad():
        fused = fusion(coarse, smooth, detail)
        up_only = fusion(coarse, zero_fine, zero_fine)
        detail_only = fusion(zero_coarse, zero_fine, detail)
        torch.testing.assert_close(fusion(zero_coarse, smooth, zero_fine), smooth)
        torch.testing.assert_close(fused, up_only + smooth + detail_only)
    assert up_only.abs().mean() > 0.1  # the coarse path contributes: zeroing it changes the output
    assert detail_only.abs().mean() > 0.1
    torch.testing.assert_close(detail_only.mean(dim=(2, 3)), torch.zeros(1, 3), atol=0.15, rtol=0)  # high-pass


@pytest.mark.parametrize("coarse_path", ["kept", "dropped"])
def test_a_signal_only_the_coarse_level_carries_reaches_the_output_through_the_fusion(coarse_path, monkeypatch):
    """Bars 4 px wide, seen only by the coarse level (8 px maps); the fine level is noise. The head learns them
    through FreqFusion's upsampled coarse path; with that path dropped (the mistake the test guards) it cannot."""
    if coarse_path == "dropped":
        forward = FreqFusion.forward
        monkeypatch.setattr(FreqFusion, "forward",
                            lambda self, coarse, smooth, detail: forward(self, torch.zeros_like(coarse), smooth,
                                                                         detail))
    spec = _spec()
    options = {"signal_steps": tuple(range(len(TIMESTEPS))), "signal_levels": ("coarse",), "block": 4}
    batch, vessel = _data(spec, 6, seed=2, **options)
    held_out, held_vessel = _data(spec, 4, seed=3, **options)
    head = build_head("tsfreqagg", spec, seed=0, width=8, kernel_channels=4)
    _train(head, batch, vessel, steps=40)
    with torch.no_grad():
        score = _balanced_accuracy(head(held_out), held_vessel)
    if coarse_path == "kept":
        assert score > 0.75
    else:
        assert score < 0.65
