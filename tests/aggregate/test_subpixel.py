"""T&S-FreqAgg's sub-pixel output (the default): logits at the finest block's resolution, so vessels narrower than
the head's map pixel can be drawn at their width; runs and checkpoints from before the default changed stay as
they were trained."""

import json

import pytest
import torch
import torch.nn.functional as F

from dgss.aggregate import training
from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.heads import build_head
from dgss.aggregate.run import RUN_FILE, load_run
from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.aggregate.windows import tiled_logits
from dgss.errors import RunError
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
    plain = build_head("tsfreqagg", spec, seed=0, subpixel=False, **SMALL).eval()
    fine = build_head("tsfreqagg", spec, seed=0, **SMALL).eval()
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


TINY = {"width": 8, "kernel_channels": 4}


def test_fit_head_draws_subpixel_logits_by_default(aggregate_store, tmp_path):
    config = HeadTrainingConfig(head="tsfreqagg", head_params=TINY, epochs=1, window=16, validation_fraction=0.0)
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", config)
    assert json.loads((run_dir / RUN_FILE).read_text())["training"]["head_params"]["subpixel"] is True
    assert load_run(run_dir).heads[0].config.subpixel


def test_a_run_recorded_before_subpixel_existed_loads_as_it_was_trained(aggregate_store, tmp_path):
    config = HeadTrainingConfig(head="tsfreqagg", head_params={**TINY, "subpixel": False}, epochs=1, window=16,
                                validation_fraction=0.0)
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", config)
    before = evaluate_run(run_dir, None, ["TGT"], tmp_path / "before", overlays=0)["targets"]["TGT"]["pooled"]
    record = json.loads((run_dir / RUN_FILE).read_text())
    del record["training"]["head_params"]["subpixel"]  # as the code before the option wrote it
    (run_dir / RUN_FILE).write_text(json.dumps(record))
    assert not load_run(run_dir).heads[0].config.subpixel
    after = evaluate_run(run_dir, None, ["TGT"], tmp_path / "after", overlays=0)["targets"]["TGT"]["pooled"]
    assert after == before


def _stopped_run_identity(store, run_dir, config, monkeypatch) -> dict:
    """Fit until the first checkpoint is written, stop there, and return the checkpoint's identity."""
    saved = training.save_checkpoint

    def stop(directory, checkpoint):
        saved(directory, checkpoint)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", stop)
    with pytest.raises(KeyboardInterrupt):
        fit_head(store, ["SRC"], run_dir, config)
    monkeypatch.setattr(training, "save_checkpoint", saved)
    return json.loads(torch.load(run_dir / "checkpoint.pt", weights_only=True)["identity"])


def _rewrite_identity(run_dir, identity: dict) -> None:
    """Replace the stopped run's checkpoint identity, as a checkpoint written by other code would hold it."""
    path = run_dir / "checkpoint.pt"
    torch.save({**torch.load(path, weights_only=True), "identity": json.dumps(identity, sort_keys=True)}, path)


def test_a_checkpoint_written_under_other_defaults_is_refused_by_name(aggregate_store, tmp_path, monkeypatch):
    config = HeadTrainingConfig(head="tsfreqagg", head_params=TINY, epochs=2, window=16, validation_fraction=0.0)
    identity = _stopped_run_identity(aggregate_store, tmp_path / "run", config, monkeypatch)
    identity["training"]["head_params"] = TINY  # what a checkpoint from before the default changed holds
    _rewrite_identity(tmp_path / "run", identity)
    with pytest.raises(RunError, match=r"other settings \(training\.head_params.*subpixel.* differ\)"):
        fit_head(aggregate_store, ["SRC"], tmp_path / "run", config, resume=True)


@pytest.mark.parametrize(("dropped", "resumes"), [(("gate", "fusion"), True), (("subpixel",), False)])
def test_a_checkpoint_that_predates_a_head_field_resumes_where_its_absence_meant_the_default(
        aggregate_store, tmp_path, monkeypatch, dropped, resumes):
    """gate and fusion were added with the behaviour before them as default; subpixel's default changed."""
    config = HeadTrainingConfig(head="tsfreqagg", head_params=TINY, epochs=2, window=16, validation_fraction=0.0)
    identity = _stopped_run_identity(aggregate_store, tmp_path / "run", config, monkeypatch)
    for name in dropped:  # what a checkpoint written before the field existed holds
        del identity["training"]["head_params"][name]
    _rewrite_identity(tmp_path / "run", identity)
    if resumes:
        fit_head(aggregate_store, ["SRC"], tmp_path / "run", config, resume=True)
        assert load_run(tmp_path / "run").heads[0].config.subpixel
    else:
        with pytest.raises(RunError, match=r"other settings \(training\.head_params\.subpixel differ\)"):
            fit_head(aggregate_store, ["SRC"], tmp_path / "run", config, resume=True)
