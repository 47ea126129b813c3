"""fit-head on windows: T&S-FreqAgg learns, tiled scores equal whole-canvas scores, checkpoints resume exactly,
an existing run is not overwritten by accident, partial sources are named, the reader hands on its errors."""

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from dgss.aggregate import training
from dgss.aggregate.data import prefetch
from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.run import RUN_FILE
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.errors import RunError

TSFREQAGG = HeadTrainingConfig(head="tsfreqagg", head_params={"width": 8, "kernel_channels": 4}, epochs=3,
                               lr=1e-2, window=16, windows_per_image=2, ensemble=2, validate_every=1,
                               lr_schedule="cosine")


def _weights(run_dir):
    return [load_file(str(path)) for path in sorted(run_dir.glob("head_*.safetensors"))]


def test_tsfreqagg_learns_from_windows(aggregate_store, tmp_path):
    config = HeadTrainingConfig(head="tsfreqagg", head_params={"width": 8, "kernel_channels": 4}, epochs=25,
                                lr=1e-2, window=16, windows_per_image=4, batch_size=3, dice_weight=1.0)
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", config)
    scores = evaluate_run(run_dir, None, ["TGT"], tmp_path / "report", overlays=0)["targets"]["TGT"]["pooled"]
    assert scores["auc_roc"] > 0.9 and scores["dice"] > 0.6


def test_a_head_trained_on_windows_scores_the_same_in_tiles_as_on_the_whole_canvas(aggregate_store, tmp_path):
    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [8]}, epochs=4, lr=1e-2, window=16)
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", config)
    whole = evaluate_run(run_dir, None, ["TGT"], tmp_path / "whole", overlays=0, tile=None)
    tiled = evaluate_run(run_dir, None, ["TGT"], tmp_path / "tiled", overlays=0, tile=24, tile_context=8)
    for name, value in whole["targets"]["TGT"]["pooled"].items():
        assert tiled["targets"]["TGT"]["pooled"][name] == pytest.approx(value, abs=1e-6), name


def test_a_stopped_run_resumes_to_the_same_heads_as_an_uninterrupted_one(aggregate_store, tmp_path, monkeypatch):
    straight = fit_head(aggregate_store, ["SRC"], tmp_path / "straight", TSFREQAGG)
    saved = training.save_checkpoint
    calls = []

    def stop_after_four(run_dir, checkpoint):
        saved(run_dir, checkpoint)
        calls.append(checkpoint)
        if len(calls) == 4:  # member 1 after its first epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", stop_after_four)
    with pytest.raises(KeyboardInterrupt):
        fit_head(aggregate_store, ["SRC"], tmp_path / "resumed", TSFREQAGG)
    monkeypatch.setattr(training, "save_checkpoint", saved)
    assert not (tmp_path / "resumed" / RUN_FILE).exists()
    with pytest.raises(RunError, match="stopped run.*--resume"):
        fit_head(aggregate_store, ["SRC"], tmp_path / "resumed", TSFREQAGG)
    resumed = fit_head(aggregate_store, ["SRC"], tmp_path / "resumed", TSFREQAGG, resume=True)
    for got, expected in zip(_weights(resumed), _weights(straight), strict=True):
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[name], expected[name]) for name in got)
    assert (resumed / "loss.csv").read_text() == (straight / "loss.csv").read_text()
    assert not (resumed / "checkpoint.pt").exists()
    selection = [json.loads((run / RUN_FILE).read_text())["selection"] for run in (resumed, straight)]
    assert selection[0] == selection[1] and len(selection[0][1]["history"]) == 3


def test_resume_with_other_settings_is_refused_by_name(aggregate_store, tmp_path, monkeypatch):
    def stop(run_dir, checkpoint):
        raise KeyboardInterrupt

    saved = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint", lambda run_dir, checkpoint: (saved(run_dir, checkpoint),
                                                                                  stop(run_dir, checkpoint)))
    with pytest.raises(KeyboardInterrupt):
        fit_head(aggregate_store, ["SRC"], tmp_path / "run", TSFREQAGG)
    monkeypatch.setattr(training, "save_checkpoint", saved)
    changed = HeadTrainingConfig(**{**TSFREQAGG.to_dict(), "lr": 5e-3})
    with pytest.raises(RunError, match=r"other settings \(training\.lr differ\)"):
        fit_head(aggregate_store, ["SRC"], tmp_path / "run", changed, resume=True)


def test_a_finished_run_is_kept_as_trained_unless_overwrite(aggregate_store, tmp_path):
    quick = HeadTrainingConfig(head="mlp", head_params={"hidden": [4]}, epochs=1, window=16)
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", quick)
    before = _weights(run_dir)
    with pytest.raises(RunError, match="already holds a finished run.*--overwrite"):
        fit_head(aggregate_store, ["SRC"], run_dir, quick)
    assert fit_head(aggregate_store, ["SRC"], run_dir, quick, resume=True) == run_dir
    longer = HeadTrainingConfig(**{**quick.to_dict(), "epochs": 2})
    with pytest.raises(RunError, match=r"finished run trained with other settings \(training\.epochs differ\)"):
        fit_head(aggregate_store, ["SRC"], run_dir, longer, resume=True)
    with pytest.raises(RunError, match=r"other settings \(sources\.TGT, validation\.TGT differ\)"):
        fit_head(aggregate_store, ["SRC", "TGT"], run_dir, quick, resume=True)
    assert all(torch.equal(got[name], kept[name]) for got, kept in zip(_weights(run_dir), before, strict=True)
               for name in got)
    fit_head(aggregate_store, ["SRC"], run_dir, HeadTrainingConfig(**{**quick.to_dict(), "seed": 5}),
             overwrite=True)
    after = _weights(run_dir)
    assert not all(torch.equal(after[0][name], before[0][name]) for name in after[0])


def test_a_partly_extracted_source_is_named_with_its_count(aggregate_cache, tmp_path, caplog):
    entry = aggregate_cache("PART", n_images=4, done=[0, 2, 3])
    quick = HeadTrainingConfig(head="mlp", head_params={"hidden": [4]}, epochs=1, window=16)
    with caplog.at_level(logging.WARNING, logger="dgss"):
        fit_head(tmp_path / "store", ["PART"], tmp_path / "run", quick)
    assert "PART: 1 of 4 images of split 'all' are not extracted yet; training on the 3 done" in caplog.text
    assert entry.done().sum() == 3


def test_prefetch_keeps_order_and_raises_the_readers_error():
    assert list(prefetch(iter(range(5)))) == list(range(5))

    def broken():
        yield 1
        raise OSError("chunk unreadable")

    reader = prefetch(broken())
    assert next(reader) == 1
    with pytest.raises(OSError, match="chunk unreadable"):
        next(reader)
