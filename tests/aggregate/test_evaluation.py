"""evaluate: native-resolution mapping, scores and report files, bad targets, and the CLI."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from dgss.aggregate.evaluation import (combined_metrics, evaluate_run, native_truth, pooled_table, predict_native,
                                       safe_file_name, score_rows, target_report_dir)
from dgss.aggregate.metrics import METRIC_NAMES
from dgss.aggregate.run import Run, RunRecord
from dgss.aggregate.spec import CacheSpec
from dgss.errors import ConfigMismatchError, DgssError, RunError, StoreError
from dgss.pipelines.app import app
from dgss.pipelines.cli import main  # registers every command on `app`


class OracleHead(nn.Module):
    """Logits that reproduce the canvas vessel mask of the batch (or its inverse)."""

    uses_features = False

    def __init__(self, invert: bool = False):
        super().__init__()
        self.sign = -1.0 if invert else 1.0

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        vessel = self.sign * (batch["vessel"].float() * 2 - 1) * 10
        return torch.stack([-vessel, vessel], dim=1)


def _oracle_run(entry, heads) -> Run:
    record = RunRecord(training={"head": "oracle", "head_params": {}}, key=entry.key, store="", sources={},
                       extraction_config=entry.config, spec={}, head_files=())
    spec = CacheSpec.from_entry_attrs(entry.config, entry.attrs)
    return Run(path=Path("oracle"), record=record, spec=spec, heads=tuple(heads), device=torch.device("cpu"))


@pytest.mark.parametrize("index, native_shape", [(0, (64, 48)), (1, (48, 64))])
def test_a_perfect_canvas_prediction_scores_one_at_native_resolution(aggregate_cache, index, native_shape):
    entry = aggregate_cache("TGT", n_images=2)
    votes, prob_native, votes_native = predict_native(_oracle_run(entry, [OracleHead()]), entry, index)
    assert votes.shape == (32, 32) and prob_native.shape == votes_native.shape == native_shape
    truth, fov = native_truth(entry, index, prob_native.shape)
    assert truth.shape == native_shape and fov.all() and truth.any()
    scores = combined_metrics(prob_native, (votes_native > 0.5).astype(np.float32), truth, fov)
    assert scores["dice"] == pytest.approx(1.0) and scores["auc_roc"] == pytest.approx(1.0)


def test_the_vote_of_a_three_head_ensemble_decides_the_mask(aggregate_cache):
    entry = aggregate_cache("TGT", n_images=1)
    run = _oracle_run(entry, [OracleHead(), OracleHead(), OracleHead(invert=True)])
    votes, prob_native, votes_native = predict_native(run, entry, 0)
    truth, fov = native_truth(entry, 0, prob_native.shape)
    np.testing.assert_allclose(np.unique(votes), [1 / 3, 2 / 3])  # two of three heads are right everywhere
    assert combined_metrics(prob_native, (votes_native > 0.5).astype(np.float32), truth, fov)["dice"] == 1.0
    inverted = _oracle_run(entry, [OracleHead(invert=True), OracleHead(invert=True), OracleHead()])
    _, _, votes_native = predict_native(inverted, entry, 0)
    assert combined_metrics(prob_native, (votes_native > 0.5).astype(np.float32), truth, fov)["dice"] == 0.0


def test_evaluate_run_scores_and_reports(aggregate_trained, tmp_path):
    _, run_dir = aggregate_trained
    results = evaluate_run(run_dir, None, ["TGT", "SRC"], tmp_path / "report", overlays=1)
    tgt, src = results["targets"]["TGT"], results["targets"]["SRC"]
    assert (tgt["split"], tgt["n_images"], list(tgt["images"])) == ("all", 2, ["TGT_00", "TGT_01"])
    assert (src["split"], src["n_images"], list(src["images"])) == ("test", 1, ["SRC_03"])
    assert set(tgt["pooled"]) == set(METRIC_NAMES) and tgt["pooled"]["dice"] > 0.7
    per_image = [values["dice"] for values in tgt["images"].values()]
    assert min(per_image) <= tgt["pooled"]["dice"] <= max(per_image)
    report = tmp_path / "report"
    assert json.loads((report / "TGT" / "scores.json").read_text())["targets"]["TGT"]["n_images"] == 2
    assert list(json.loads((report / "SRC" / "scores.json").read_text())["targets"]) == ["SRC"]
    rows = list(csv.DictReader((report / "TGT" / "scores.csv").open()))
    assert [(row["target"], row["image"]) for row in rows] == [
        ("TGT", "pooled"), ("TGT", "mean"), ("TGT", "TGT_00"), ("TGT", "TGT_01")]
    assert rows[1]["n_images"] == "2" and float(rows[1]["dice"]) == pytest.approx(np.mean(per_image), abs=1e-9)
    assert (report / "TGT" / "scores.png").is_file()
    assert [path.name for path in (report / "TGT" / "overlays").iterdir()] == ["TGT_00.png"]
    assert [path.name for path in (report / "SRC" / "overlays").iterdir()] == ["SRC_03.png"]
    log = (report / "TGT" / "log.txt").read_text()
    assert "evaluate TGT: 2/2 images" in log and "TGT pooled Dice" in log


def test_a_second_evaluate_keeps_the_first_targets_report_and_refuses_to_replace_one(aggregate_trained, tmp_path):
    _, run_dir = aggregate_trained
    evaluate_run(run_dir, None, ["TGT"], tmp_path / "report", overlays=2)
    first = (tmp_path / "report" / "TGT" / "scores.json").read_text()
    evaluate_run(run_dir, None, ["SRC"], tmp_path / "report", overlays=1)
    assert (tmp_path / "report" / "TGT" / "scores.json").read_text() == first
    with pytest.raises(DgssError, match="report.TGT already holds a report .*pass --overwrite"):
        evaluate_run(run_dir, None, ["TGT", "SRC"], tmp_path / "report", overlays=0)
    evaluate_run(run_dir, None, ["TGT"], tmp_path / "report", overlays=1, overwrite=True)
    assert [path.name for path in (tmp_path / "report" / "TGT" / "overlays").iterdir()] == ["TGT_00.png"]


def test_a_target_named_by_a_path_gets_a_report_folder_of_its_own(aggregate_trained, aggregate_cache, tmp_path):
    """`folder:/abs/path` used to end in FileNotFoundError: the overlay name kept its slashes."""
    _, run_dir = aggregate_trained
    names = ["folder:/data/a/mini", "folder:/data/b/mini"]
    for name in names:
        aggregate_cache(name, n_images=2, seed=1)
    results = evaluate_run(run_dir, tmp_path / "store", names, tmp_path / "report", overlays=1)
    folders = sorted(path.name for path in (tmp_path / "report").iterdir())
    assert len(folders) == 2 and all(":" not in folder and folder.startswith("folder_data_") for folder in folders)
    assert [Path(path).parent.parent.name for path in results["files"][names[0]]["overlays"]] == [
        target_report_dir(tmp_path / "report", names[0]).name]


@pytest.mark.parametrize("name, expected", [("CHASE_DB1", "CHASE_DB1"), ("STARE+photo1", "STARE+photo1"),
                                            ("folder:mini", "folder_mini-"), ("..", "-")])
def test_safe_file_names(name, expected):
    safe = safe_file_name(name)
    assert safe.startswith(expected) and "/" not in safe and ":" not in safe and not safe.startswith(".")


def test_the_mean_row_averages_each_metric_over_the_images_where_it_is_defined(recwarn):
    """AUC is NaN on an image without vessels: the mean leaves that image out; a metric NaN everywhere stays NaN."""
    nan = float("nan")
    images = {"a": dict.fromkeys(METRIC_NAMES, 0.5), "b": dict.fromkeys(METRIC_NAMES, 0.9)}
    images["a"]["auc_roc"], images["b"]["auc_pr"], images["a"]["auc_pr"] = nan, nan, nan
    results = {"targets": {"T": {"n_images": 2, "pooled": dict.fromkeys(METRIC_NAMES, 0.6), "images": images}}}
    mean = score_rows(results)[1]
    assert (mean["target"], mean["image"], mean["n_images"]) == ("T", "mean", 2)
    assert mean["dice"] == pytest.approx(0.7) and mean["auc_roc"] == pytest.approx(0.9)
    assert np.isnan(mean["auc_pr"]) and not recwarn.list
    assert [line.split()[1] for line in pooled_table(results).splitlines()] == ["image", "pooled", "mean"]


def test_target_not_in_the_store_says_how_to_add_it(aggregate_trained, tmp_path):
    store, run_dir = aggregate_trained
    expected = (f"no features for CHASE_DB1 .*`dgss extract --dataset CHASE_DB1 --store {store} --model synthetic "
                "--blocks up_blocks.0,up_blocks.1,up_blocks.2 --timesteps 1,10 --input-size 32` would add it")
    with pytest.raises(StoreError, match=expected):
        evaluate_run(run_dir, store, ["CHASE_DB1"], tmp_path / "report")


def test_target_under_another_key_names_both_keys(aggregate_trained, aggregate_cache, tmp_path):
    _, run_dir = aggregate_trained
    other = aggregate_cache("TGT", n_images=2, digest="other-model")
    run_key = json.loads((run_dir / "run.json").read_text())["key"]
    expected = f"TGT is cached .* under key {other.key}.*trained on key {run_key}"
    with pytest.raises(ConfigMismatchError, match=expected):
        evaluate_run(run_dir, tmp_path / "store", ["TGT"], tmp_path / "report")


def test_target_with_no_done_image_is_an_error(aggregate_trained, aggregate_cache, tmp_path):
    _, run_dir = aggregate_trained
    aggregate_cache("TGT", n_images=2, done=[])
    with pytest.raises(StoreError, match="TGT .*no extracted image in split 'all'"):
        evaluate_run(run_dir, tmp_path / "store", ["TGT"], tmp_path / "report")


def test_evaluate_refuses_an_unfinished_run(aggregate_trained, tmp_path):
    store, _ = aggregate_trained
    (tmp_path / "run").mkdir()
    with pytest.raises(RunError, match="run.json is missing"):
        evaluate_run(tmp_path / "run", store, ["TGT"], tmp_path / "report")


def test_evaluate_command_prints_the_pooled_table(aggregate_trained, tmp_path):
    _, run_dir = aggregate_trained
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run_dir), "--target", "TGT",
                                      "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    header, pooled, mean, after = result.output.splitlines()[:4]
    assert header.split()[:4] == ["target", "image", "n_images", "dice"]
    assert pooled.split()[:3] == ["TGT", "pooled", "2"] and mean.split()[:3] == ["TGT", "mean", "2"]
    assert after.startswith("scores and overlays written to")
    assert (tmp_path / "report" / "TGT" / "scores.csv").is_file()


def test_evaluate_command_error_is_one_line_and_non_zero(aggregate_trained, tmp_path, monkeypatch, capsys):
    _, run_dir = aggregate_trained
    monkeypatch.setattr(sys, "argv", ["dgss", "evaluate", "--run", str(run_dir), "--target", "NOPE",
                                      "--report", str(tmp_path / "report")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: no features for NOPE") and error.count("\n") == 1
    assert not (tmp_path / "report").exists()


def test_a_target_image_the_run_trained_on_is_refused_by_name(aggregate_cache, tmp_path):
    from dgss.aggregate.training import HeadTrainingConfig, fit_head

    aggregate_cache("A", n_images=2)
    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [4]}, epochs=1, window=16)
    run_dir = fit_head(tmp_path / "store", ["A"], tmp_path / "run", config)
    with pytest.raises(ConfigMismatchError, match="trained on 2 image.*of A that would be scored \\(A_00, A_01\\)"):
        evaluate_run(run_dir, None, ["A"], tmp_path / "report")
    assert not (tmp_path / "report").exists()
    results = evaluate_run(run_dir, None, ["A"], tmp_path / "report", overlays=0, allow_training_images=True)
    assert results["targets"]["A"]["training_images"] == 2


def test_images_seen_through_a_photometric_view_count_as_seen_images_of_its_base():
    record = RunRecord(training={"head": "mlp", "head_params": {}}, key="k", store="", extraction_config={}, spec={},
                       head_files=(), sources={"STARE+photo1": ["im0001"], "DRIVE": ["21_training"]},
                       validation_images={"STARE+photo2": ["im0002"]})
    assert record.seen_images("STARE") == {"im0001", "im0002"}
    assert record.seen_images("STARE+photo3") == {"im0001", "im0002"}  # a view of the same photos
    assert record.seen_images("DRIVE") == {"21_training"} and record.seen_images("CHASE_DB1") == set()
