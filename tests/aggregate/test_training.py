"""fit-head: config round trip, run files, a head that learns, source checks, and the CLI."""

import csv
import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from dgss.aggregate.data import CachedImages
from dgss.aggregate.inference import majority_vote, member_probabilities
from dgss.aggregate.metrics import vessel_metrics
from dgss.aggregate.run import RUN_FILE, load_run
from dgss.aggregate.training import HeadTrainingConfig, fit_head, learning_rate, segmentation_loss
from dgss.errors import DgssError, RunError, StoreError
from dgss.pipelines.app import app
from dgss.pipelines.cli import main  # registers every command on `app`
from dgss.store import FeatureStore

QUICK = HeadTrainingConfig(head="mlp", head_params={"hidden": [8]}, epochs=1, lr=1e-2, validation_fraction=0.0)


def test_config_round_trips_and_has_the_release_optimiser():
    config = HeadTrainingConfig(head="tsfreqagg", head_params={"width": 8}, ensemble=3, dice_weight=0.5, window=None)
    assert HeadTrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    default = HeadTrainingConfig()
    assert (default.lr, default.batch_size, default.seed, default.ensemble) == (2e-3, 2, 0, 1)


def test_config_rejects_unknown_fields_and_bad_values():
    with pytest.raises(DgssError, match="unknown head training field.*epoch"):
        HeadTrainingConfig.from_dict({"epoch": 3})
    with pytest.raises(DgssError, match="ensemble must be at least 1"):
        HeadTrainingConfig(ensemble=0)


def test_the_cosine_schedule_anneals_the_learning_rate_to_zero_and_constant_keeps_it():
    cosine = HeadTrainingConfig(lr=1e-2, lr_schedule="cosine")
    assert [round(learning_rate(cosine, done), 6) for done in (0.0, 0.5, 0.999)] == [1e-2, 5e-3, 0.0]
    assert learning_rate(HeadTrainingConfig(lr=1e-2), 0.9) == 1e-2
    with pytest.raises(DgssError, match="lr_schedule must be one of constant, cosine"):
        HeadTrainingConfig(lr_schedule="step")


def test_dice_term_adds_to_the_cross_entropy():
    logits = torch.zeros(1, 2, 4, 4)
    vessel = torch.zeros(1, 4, 4, dtype=torch.int64)
    vessel[0, 1] = 1
    plain = segmentation_loss(logits, vessel, 0.0)
    torch.testing.assert_close(plain, torch.tensor(np.log(2), dtype=torch.float32))
    assert segmentation_loss(logits, vessel, 1.0) > plain


def test_fit_head_writes_the_run_files(aggregate_trained):
    store, run_dir = aggregate_trained
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "head_00.safetensors", "head_01.safetensors", "log.txt", "loss.csv", "loss.png", RUN_FILE]
    record = json.loads((run_dir / RUN_FILE).read_text())
    entry = FeatureStore(store).entry("SRC")
    assert record["key"] == entry.key and record["extraction_config"] == entry.config
    assert record["spec"]["canvas_size"] == 32 and record["training"]["ensemble"] == 2
    rows = list(csv.DictReader((run_dir / "loss.csv").open()))
    assert len(rows) == 2 * 8 and {row["member"] for row in rows} == {"0", "1"}
    for member in "01":
        losses = [float(row["loss"]) for row in rows if row["member"] == member]
        assert losses[-1] < losses[0] / 2


def test_trained_head_finds_the_vessels(aggregate_trained):
    store, run_dir = aggregate_trained
    run = load_run(run_dir)
    entry = FeatureStore(store).entry("SRC")
    probs, truths, fovs = [], [], []
    for index in range(3):
        item = CachedImages([(entry, index)])[0]
        members = member_probabilities(run, {name: value[None] for name, value in item.items()})[:, 0]
        probs.append(majority_vote(members).float().numpy())
        truths.append(item["vessel"].numpy().astype(bool))
        fovs.append(item["fov"].numpy())
    truth, fov = np.stack(truths), np.stack(fovs)
    dice = vessel_metrics(np.stack(probs), truth, fov)["dice"]
    all_vessel = vessel_metrics(np.ones(truth.shape), truth, fov)["dice"]
    assert dice > 0.8 and dice > all_vessel + 0.2  # all background scores 0


def test_keeping_images_in_memory_trains_the_same_heads(aggregate_cache, tmp_path):
    aggregate_cache("SRC", n_images=4)
    config = HeadTrainingConfig(head="tsfreqagg", head_params={"width": 4, "kernel_channels": 4}, epochs=2,
                                window=16, validation_fraction=0.25, validate_every=1)
    streamed = fit_head(tmp_path / "store", ["SRC"], tmp_path / "streamed", config, keep_bytes=0)
    kept = fit_head(tmp_path / "store", ["SRC"], tmp_path / "kept", config, keep_bytes=2**30)
    weights = {run: load_file(run / "head_00.safetensors") for run in (streamed, kept)}
    assert weights[streamed].keys() == weights[kept].keys()
    assert all(torch.equal(weights[streamed][name], weights[kept][name]) for name in weights[kept])
    record = lambda run: {k: v for k, v in json.loads((run / RUN_FILE).read_text()).items() if k != "store"}
    assert record(streamed) == record(kept)


def test_ensemble_members_are_seeded_independently(aggregate_trained):
    run = load_run(aggregate_trained[1])
    first, second = (head.state_dict() for head in run.heads)
    assert not torch.equal(first["first_bias"], second["first_bias"])


def test_several_sources_train_one_run(aggregate_cache, tmp_path):
    aggregate_cache("A", n_images=2)
    aggregate_cache("B", n_images=3, splits=["training", "test", "training"])
    run_dir = fit_head(tmp_path / "store", ["A", "B"], tmp_path / "run", QUICK)
    assert load_run(run_dir).record.sources == {"A": ["A_00", "A_01"], "B": ["B_00", "B_02"]}


def test_sources_under_different_keys_are_refused(aggregate_cache, tmp_path):
    a = aggregate_cache("A", n_images=2)
    b = aggregate_cache("B", n_images=2, digest="other-model")
    with pytest.raises(StoreError, match=f"different extraction keys.*A: {a.key}, B: {b.key}"):
        fit_head(tmp_path / "store", ["A", "B"], tmp_path / "run", QUICK)
    assert not (tmp_path / "run").exists()


def test_a_dataset_with_several_keys_needs_key(aggregate_cache, tmp_path):
    a = aggregate_cache("A", n_images=2)
    other = aggregate_cache("A", n_images=2, digest="other-model")
    with pytest.raises(StoreError, match=f"several configs.*{a.key}.*{other.key}|{other.key}.*{a.key}"):
        fit_head(tmp_path / "store", ["A"], tmp_path / "run", QUICK)
    run_dir = fit_head(tmp_path / "store", ["A"], tmp_path / "run", QUICK, key=other.key)
    assert load_run(run_dir).key == other.key


def test_unknown_source_lists_the_cache(aggregate_cache, tmp_path):
    aggregate_cache("A", n_images=2)
    with pytest.raises(StoreError, match="no features for DRIVE.*cached: .*A.*dgss extract --dataset DRIVE"):
        fit_head(tmp_path / "store", ["DRIVE"], tmp_path / "run", QUICK)


def test_empty_split_writes_nothing(aggregate_cache, tmp_path):
    aggregate_cache("A", n_images=4, splits=["training", "training", "test", "test"], done=[2, 3])
    with pytest.raises(StoreError, match="no extracted image in split 'training'"):
        fit_head(tmp_path / "store", ["A"], tmp_path / "run", QUICK)
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_refused_before_training(aggregate_cache, tmp_path):
    aggregate_cache("A", n_images=2)
    (tmp_path / "run").write_text("")
    with pytest.raises(RunError, match="is a file, not a folder"):
        fit_head(tmp_path / "store", ["A"], tmp_path / "run", QUICK)


def test_fit_head_command(aggregate_cache, tmp_path):
    aggregate_cache("A", n_images=2)
    result = CliRunner().invoke(app, [
        "fit-head", "--source", "A", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "run"),
        "--head", "mlp", "--head-param", "hidden=[8]", "--epochs", "1", "--ensemble", "2", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / RUN_FILE).read_text())
    assert record["training"]["head_params"] == {"hidden": [8]} and record["training"]["ensemble"] == 2


def test_fit_head_command_error_is_one_line_and_non_zero(aggregate_cache, tmp_path, monkeypatch, capsys):
    aggregate_cache("A", n_images=2)
    monkeypatch.setattr(sys, "argv", ["dgss", "fit-head", "--source", "NOPE", "--store", str(tmp_path / "store"),
                                      "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: no features for NOPE") and error.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_fit_head_command_window_options_and_an_existing_out(aggregate_cache, tmp_path, monkeypatch, capsys):
    aggregate_cache("A", n_images=2)
    args = ["dgss", "fit-head", "--source", "A", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "run"),
            "--head", "mlp", "--head-param", "hidden=[4]", "--epochs", "1", "--window", "0"]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    assert json.loads((tmp_path / "run" / RUN_FILE).read_text())["training"]["window"] is None
    capsys.readouterr()
    for extra, message, code in (([], "already holds a finished run", 1), (["--resume", "--overwrite"], "contradict", 2)):
        monkeypatch.setattr(sys, "argv", [*args, *extra])
        with pytest.raises(SystemExit) as exit_info:
            main()
        error = capsys.readouterr().err
        assert exit_info.value.code == code and message in error and "Traceback" not in error
        assert code == 2 or error.count("\n") == 1
