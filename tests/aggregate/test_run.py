"""The run folder: round trip, checks on load, and how the ensemble combines its members."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from dgss.aggregate.data import CachedImages
from dgss.aggregate.inference import majority_vote, member_probabilities, predict_probabilities, vote_fraction
from dgss.aggregate.run import RUN_FILE, load_run
from dgss.errors import RunError
from dgss.store import FeatureStore


def _batch(store, dataset="SRC", index=0):
    item = CachedImages([(FeatureStore(store).entry(dataset), index)])[0]
    return {name: value[None] for name, value in item.items()}


def test_loaded_run_describes_its_training(aggregate_trained):
    store, run_dir = aggregate_trained
    run = load_run(run_dir)
    assert len(run.heads) == 2 and not any(head.training for head in run.heads)
    assert run.record.sources == {"SRC": ["SRC_00", "SRC_01", "SRC_02"]}
    assert run.key == FeatureStore(store).entry("SRC").key
    assert run.record.training["head_params"] == {"hidden": [16]}
    assert run.spec.canvas_size == 32


def test_predict_probabilities_is_the_member_mean(aggregate_trained):
    store, run_dir = aggregate_trained
    run = load_run(run_dir)
    batch = _batch(store)
    members = member_probabilities(run, batch)
    prob = predict_probabilities(run, batch)
    assert members.shape == (2, 1, 32, 32) and prob.shape == (1, 32, 32)
    torch.testing.assert_close(prob, members.mean(dim=0))


def test_predict_accepts_float16_numpy_features(aggregate_trained):
    store, run_dir = aggregate_trained
    run = load_run(run_dir)
    batch = _batch(store)
    half = {name: value.numpy().astype(np.float16) if name.startswith("features/") else value
            for name, value in batch.items()}
    torch.testing.assert_close(predict_probabilities(run, half), predict_probabilities(run, batch), atol=1e-2, rtol=0)


def test_majority_vote_counts_members_and_a_tie_is_background():
    members = torch.tensor([[0.9, 0.9, 0.1, 0.6], [0.8, 0.2, 0.2, 0.4], [0.7, 0.6, 0.3, 0.4]])
    assert majority_vote(members).tolist() == [True, True, False, False]
    assert majority_vote(members[:2]).tolist() == [True, False, False, False]
    torch.testing.assert_close(vote_fraction(members), torch.tensor([1.0, 2 / 3, 0.0, 1 / 3]))


def test_majority_vote_differs_from_thresholding_the_mean():
    members = torch.tensor([[0.51], [0.51], [0.0]])
    assert majority_vote(members).item() and members.mean().item() < 0.5


@pytest.fixture
def run_copy(aggregate_trained, tmp_path):
    _, run_dir = aggregate_trained
    copy = tmp_path / "run"
    copy.mkdir()
    for path in run_dir.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    return copy


def test_missing_folder_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        load_run(tmp_path / "nothing")


def test_folder_without_run_json_is_not_a_run(run_copy):
    (run_copy / RUN_FILE).unlink()
    with pytest.raises(RunError, match="run.json is missing"):
        load_run(run_copy)


def test_corrupt_run_json_is_named(run_copy):
    (run_copy / RUN_FILE).write_text("{ not json")
    with pytest.raises(RunError, match="run.json is corrupt"):
        load_run(run_copy)


def test_run_json_missing_a_field_is_named(run_copy):
    data = json.loads((run_copy / RUN_FILE).read_text())
    del data["key"]
    (run_copy / RUN_FILE).write_text(json.dumps(data))
    with pytest.raises(RunError, match="run.json is corrupt.*key"):
        load_run(run_copy)


def test_missing_head_file_is_named(run_copy):
    (run_copy / "head_01.safetensors").unlink()
    with pytest.raises(RunError, match="head_01.safetensors is missing"):
        load_run(run_copy)


@pytest.mark.parametrize("damage", [lambda data: data[: len(data) // 2], lambda data: b"garbage"])
def test_corrupt_head_file_is_named(run_copy, damage):
    path = run_copy / "head_00.safetensors"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(RunError, match="head_00.safetensors is corrupt"):
        load_run(run_copy)


def test_head_file_of_another_shape_is_named(run_copy):
    data = json.loads((run_copy / RUN_FILE).read_text())
    data["training"]["head_params"] = {"hidden": [8]}
    (run_copy / RUN_FILE).write_text(json.dumps(data))
    with pytest.raises(RunError, match="head_00.safetensors is corrupt or does not fit"):
        load_run(run_copy)


def test_test_time_flips_make_the_prediction_follow_a_flipped_canvas(aggregate_trained):
    """Averaged over the eight symmetries, the prediction of a flipped and rotated canvas is the flipped and
    rotated prediction; a single pass of the head has no such guarantee."""
    from dgss.aggregate.augment import SYMMETRIES, apply_symmetry, undo_symmetry

    store, run_dir = aggregate_trained
    plain, flipped = load_run(run_dir, tile=None), load_run(run_dir, tile=None, flips=True)
    batch = _batch(store)
    symmetry = (True, True, False)
    moved = apply_symmetry(batch, plain.spec, symmetry)
    follows = undo_symmetry(predict_probabilities(flipped, moved), symmetry)
    torch.testing.assert_close(follows, predict_probabilities(flipped, batch), atol=1e-5, rtol=0)
    assert not torch.allclose(undo_symmetry(predict_probabilities(plain, moved), symmetry),
                              predict_probabilities(plain, batch), atol=1e-3)
    by_hand = torch.stack([undo_symmetry(predict_probabilities(plain, apply_symmetry(batch, plain.spec, s)), s)
                           for s in SYMMETRIES]).mean(dim=0)
    torch.testing.assert_close(predict_probabilities(flipped, batch), by_hand)


def test_run_json_names_its_store_relative_to_the_run_so_both_can_move_together(aggregate_store, tmp_path):
    from dgss.aggregate.evaluation import evaluate_run
    from dgss.aggregate.training import HeadTrainingConfig, fit_head

    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [4]}, epochs=1, validation_fraction=0.0)
    fit_head(aggregate_store, ["SRC"], tmp_path / "runs" / "a", config)
    record = json.loads((tmp_path / "runs" / "a" / "run.json").read_text())
    assert record["store"] == os.path.join("..", "..", "store") and record["backbone"] == "synthetic"
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(tmp_path / "runs", moved / "runs")
    shutil.move(aggregate_store, moved / "store")
    results = evaluate_run(moved / "runs" / "a", None, ["TGT"], tmp_path / "report", overlays=0)
    assert results["store"] == str(moved / "store") and results["targets"]["TGT"]["n_images"] == 2


def test_test_time_flips_default_to_how_the_run_was_trained(aggregate_trained, tmp_path):
    """A head trained on flipped windows has seen flipped features; one trained without has not, so flipping its
    inputs at test time would feed it what it never learnt from."""
    import shutil

    _, run_dir = aggregate_trained
    assert not load_run(run_dir).flips and load_run(run_dir, flips=True).flips
    flipped_run = shutil.copytree(run_dir, tmp_path / "run")
    record = json.loads((flipped_run / RUN_FILE).read_text())
    record["training"]["flips"] = True
    (flipped_run / RUN_FILE).write_text(json.dumps(record))
    assert load_run(flipped_run).flips and not load_run(flipped_run, flips=False).flips
