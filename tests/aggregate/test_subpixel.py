"""T&S-FreqAgg's sub-pixel output: logits at the finest block's resolution, so vessels narrower than the head's map
pixel can be drawn at their width."""

import pytest
import torch
import torch.nn.functional as F

from dgss.aggregate.heads import build_head
from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.aggregate.windows import tiled_logits
from head_batches import random_batch

SMALL = {"width": 8, "kernel_channels": 4}


def _spec(canvas: int) -> CacheSpec:
    """Blocks at strides 8, 4, 2 with Haar bands: the head's map is at stride 4, sub-pixel logits at stride 2."""
    sizes = {"coarse": canvas // 8, "middle": canvas // 4, "fine": canvas // 2}
    blocks = tuple(BlockSpec(name=f"up_blocks.{i}", channels=3, height=size, width=size, level=level)
                   for i, (level, size) in enumerate(sizes.items()))
    return CacheSpec(blocks=blocks, timesteps=(1, 10), bands="haar", canvas_size=canvas)


def test_subpixel_logits_come_out_at_twice_the_heads_resolution():
    spec = _spec(32)
    batch = random_batch(spec, 2)
    plain = build_head("tsfreqagg", spec, seed=0, **SMALL).eval()
    fine = build_head("tsfreqagg", spec, seed=0, subpixel=True, **SMALL).eval()
    with torch.no_grad():
        (plain_logits, plain_gates), (fine_logits, fine_gates) = (
            head.forward_with_gates(batch) for head in (plain, fine))
    assert plain_logits.shape == fine_logits.shape == (2, 2, 32, 32)
    assert plain_gates.shape == (2, 2, 8, 8)
    assert fine_gates.shape == (2, 2, 16, 16)


def _fit_stripes(subpixel: bool) -> float:
    """Overfit one batch whose label is vertical stripes 2 canvas pixels wide; the Dice reached."""
    spec = _spec(32)
    batch = random_batch(spec, 2)
    columns = torch.arange(32)
    target = ((columns % 4) < 2).long().expand(2, 32, 32)
    head = build_head("tsfreqagg", spec, seed=0, subpixel=subpixel, dropout=0.0, **SMALL)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(head(batch), target).backward()
        optimizer.step()
    with torch.no_grad():
        called = head.eval()(batch).argmax(dim=1)
    hits = (called * target).sum().item()
    return 2 * hits / (called.sum().item() + target.sum().item())


def test_subpixel_head_draws_vessels_narrower_than_the_heads_map_pixel():
    # Stripes of period 4 canvas pixels repeat within each pixel of the plain head's stride-4 map: bilinear
    # upsampling cannot draw them; a 2x2 block of logits per map pixel can.
    assert _fit_stripes(subpixel=True) > 0.95
    assert _fit_stripes(subpixel=False) < 0.8


@pytest.mark.parametrize("refine", [0, 4])
def test_subpixel_tiles_give_the_logits_of_the_whole_canvas(refine):
    spec = _spec(512)
    head = build_head("tsfreqagg", spec, seed=1, subpixel=True, image_refine=refine, **SMALL).eval()
    if refine:  # a trained refinement, not the zero start that changes nothing
        torch.nn.init.normal_(head.image_refine.layers[-1].weight, std=0.1)
    batch = random_batch(spec, 1)
    with torch.no_grad():
        whole = head(batch)
        tiled = tiled_logits(head, batch, spec, side=384, context=96)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
