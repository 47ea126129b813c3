"""T&S-FreqAgg's optional full-resolution refinement from the canvas image: a neutral start, and it learns widths."""

import torch

from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.heads import build_head
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.aggregate.spec import BlockSpec, CacheSpec
from head_batches import random_batch


def _spec() -> CacheSpec:
    blocks = tuple(BlockSpec(name=f"b{i}", channels=3, height=size, width=size, level=level)
                   for i, (level, size) in enumerate({"coarse": 8, "middle": 16, "fine": 32}.items()))
    return CacheSpec(blocks=blocks, timesteps=(1, 10), bands="haar", canvas_size=64)


def test_a_new_refinement_changes_nothing_until_trained():
    spec = _spec()
    batch = random_batch(spec, 2)
    plain = build_head("tsfreqagg", spec, seed=3, width=4, kernel_channels=4).eval()
    refined = build_head("tsfreqagg", spec, seed=3, width=4, kernel_channels=4, image_refine=4).eval()
    refined.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(refined(batch), plain(batch))
        batch["image"] = torch.rand_like(batch["image"])
        refined.image_refine.layers[-1].weight.normal_()
        assert not torch.allclose(refined(batch), plain(batch))


def test_a_refined_head_trains_and_scores(aggregate_store, tmp_path):
    config = HeadTrainingConfig(head="tsfreqagg", head_params={"width": 8, "kernel_channels": 4, "image_refine": 8},
                                epochs=25, lr=1e-2, window=16, windows_per_image=4, batch_size=3, dice_weight=1.0)
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", config)
    scores = evaluate_run(run_dir, None, ["TGT"], tmp_path / "report", overlays=0)["targets"]["TGT"]["pooled"]
    assert scores["auc_roc"] > 0.9 and scores["dice"] > 0.6
