"""Model selection on source images only: the FOV-only loss, the held-out split, the validation threshold, and a run
that stores its members' epochs and thresholds for evaluate to use."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.inference import otsu_threshold
from dgss.aggregate.metrics import MetricAccumulator
from dgss.aggregate.run import RUN_FILE, load_run
from dgss.aggregate.training import HeadTrainingConfig, fit_head, segmentation_loss
from dgss.aggregate.validation import held_out_ids, hold_out
from dgss.errors import ConfigMismatchError, DgssError, RunError
from dgss.store import FeatureStore

VALIDATED = HeadTrainingConfig(head="mlp", head_params={"hidden": [8]}, epochs=4, lr=1e-2, window=16,
                               validation_fraction=0.34, validate_every=2)


def test_the_loss_ignores_everything_outside_the_fov():
    logits = torch.randn(1, 2, 6, 6, requires_grad=True)
    vessel = torch.randint(0, 2, (1, 6, 6))
    fov = torch.zeros(1, 6, 6, dtype=torch.bool)
    fov[0, 1:4, 1:4] = True
    segmentation_loss(logits, vessel, 1.0, fov).backward()
    assert torch.all(logits.grad[:, :, ~fov[0]] == 0) and torch.any(logits.grad[:, :, fov[0]] != 0)
    inside = segmentation_loss(logits[..., 1:4, 1:4], vessel[..., 1:4, 1:4], 0.0)
    torch.testing.assert_close(segmentation_loss(logits, vessel, 0.0, fov), inside)
    assert segmentation_loss(logits, vessel, 0.0, torch.zeros_like(fov)) == 0


def test_the_validation_threshold_is_where_dice_is_best():
    truth = np.zeros((1, 100), dtype=bool)
    truth[0, :20] = True
    prob = np.where(truth, 0.3, 0.1)  # a head that ranks perfectly but never reaches 0.5
    pooled = MetricAccumulator(bins=1000)
    pooled.update(prob, truth, np.ones_like(truth))
    threshold, dice = pooled.best_dice_threshold()
    assert 0.1 < threshold <= 0.3 and dice == 1.0
    assert pooled.compute()["dice"] == 0.0  # what 0.5 gives


def test_held_out_images_are_seeded_and_never_all(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=4)
    training, validation = hold_out(entry.dataset, range(10), 0.2, seed=0)
    assert len(validation) == 2 and sorted(training + validation) == list(range(10))
    assert hold_out(entry.dataset, range(10), 0.2, seed=0) == (training, validation)
    assert hold_out(entry.dataset, [3], 0.5, seed=0) == ([3], [])
    assert hold_out(entry.dataset, [3, 4], 0.01, seed=0)[1] in ([3], [4])
    assert hold_out(entry.dataset, range(10), 0.0, seed=0) == (list(range(10)), [])



def test_a_view_holds_out_exactly_its_bases_images():
    """DRIVE+photo1 re-renders DRIVE's images: drawing its own validation images would train on copies of DRIVE's
    validation images and let copies of its training images choose the epoch and threshold."""
    ids = [f"{number:02d}" for number in range(21, 41)]
    drive, views = SimpleNamespace(dataset="DRIVE", image_ids=ids), [
        SimpleNamespace(dataset=f"DRIVE+photo{view}", image_ids=ids) for view in (1, 2)]
    usable = {entry.dataset: range(len(ids)) for entry in (drive, *views)}
    held = held_out_ids([*views, drive], usable, 0.2, seed=0)  # views named first: the base still draws
    assert len(held["DRIVE"]) == 4 and held["DRIVE+photo1"] == held["DRIVE+photo2"] == held["DRIVE"]
    assert held_out_ids([drive], usable, 0.2, seed=0)["DRIVE"] == held["DRIVE"]  # as without views
    assert held_out_ids(views, usable, 0.2, seed=0)["DRIVE+photo1"] == held["DRIVE"]  # views alone: the base's draw


def test_bad_validation_settings_are_refused():
    with pytest.raises(DgssError, match="validation_fraction"):
        HeadTrainingConfig(validation_fraction=0.9)
    with pytest.raises(DgssError, match="validate_every"):
        HeadTrainingConfig(validate_every=0)
    with pytest.raises(DgssError, match="validation_fraction"):
        HeadTrainingConfig(validation_fraction=float("nan"))


def test_a_validated_run_stores_each_members_epoch_and_threshold(aggregate_store, tmp_path):
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", VALIDATED)
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["validation_images"] == {"SRC": ["SRC_01"]} and record["sources"] == {"SRC": ["SRC_00", "SRC_02"]}
    (selection,) = record["selection"]
    assert [score["epoch"] for score in selection["history"]] == [2, 4]
    best = max(selection["history"], key=lambda score: score["dice"])
    assert (selection["epoch"], selection["threshold"]) == (best["epoch"], best["threshold"])
    assert load_run(run_dir).thresholds == (selection["threshold"],)


def test_evaluate_uses_the_stored_threshold_unless_one_is_given(aggregate_store, tmp_path):
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", VALIDATED)
    stored = evaluate_run(run_dir, None, ["TGT"], tmp_path / "stored", overlays=0)
    assert stored["thresholds"] == list(load_run(run_dir).thresholds)
    strict = evaluate_run(run_dir, None, ["TGT"], tmp_path / "strict", overlays=0, threshold=0.999)
    assert strict["thresholds"] == [0.999]
    assert strict["targets"]["TGT"]["pooled"]["sensitivity"] < stored["targets"]["TGT"]["pooled"]["sensitivity"]
    assert strict["targets"]["TGT"]["pooled"]["auc_roc"] == stored["targets"]["TGT"]["pooled"]["auc_roc"]
    with pytest.raises(RunError, match="threshold 1.5"):
        load_run(run_dir, threshold=1.5)


def test_otsu_thresholds_each_image_inside_its_fov_without_its_labels(aggregate_store, tmp_path):
    rng = np.random.default_rng(0)
    fov = np.zeros((20, 20), dtype=bool)
    fov[2:18, 2:18] = True
    prob = np.where(rng.random((20, 20)) < 0.2, 0.3, 0.05)  # a dim, well separated vessel class
    prob[~fov] = 0.99  # outside the FOV: ignored
    assert 0.05 <= otsu_threshold(prob, fov) < 0.3
    assert otsu_threshold(np.full((4, 4), 0.2)) == 0.5  # nothing to separate
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", VALIDATED)
    otsu = evaluate_run(run_dir, None, ["TGT"], tmp_path / "otsu", overlays=0, threshold="otsu")
    stored = evaluate_run(run_dir, None, ["TGT"], tmp_path / "stored", overlays=0)
    assert otsu["thresholds"] == "otsu, per image"
    assert otsu["targets"]["TGT"]["pooled"]["auc_roc"] == stored["targets"]["TGT"]["pooled"]["auc_roc"]
    assert otsu["targets"]["TGT"]["pooled"]["dice"] != stored["targets"]["TGT"]["pooled"]["dice"]
    with pytest.raises(RunError, match="'median'.*otsu"):
        load_run(run_dir, threshold="median")


def test_validation_images_count_as_seen_by_evaluate(aggregate_cache, tmp_path):
    aggregate_cache("SRC", n_images=3)
    run_dir = fit_head(tmp_path / "store", ["SRC"], tmp_path / "run", VALIDATED)
    with pytest.raises(ConfigMismatchError, match="3 image"):
        evaluate_run(run_dir, None, ["SRC"], tmp_path / "report", overlays=0)
    assert FeatureStore(tmp_path / "store").entry("SRC").done().all()
