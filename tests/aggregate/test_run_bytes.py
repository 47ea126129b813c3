"""A fit-head run stopped and resumed writes the same bytes as one that ran straight through: head files, run.json,
loss curve, validation scores (so content hashes of runs agree)."""

import pytest

from dgss.aggregate import training
from dgss.aggregate.training import HeadTrainingConfig, fit_head

CONFIG = HeadTrainingConfig(head="tsfreqagg", head_params={"width": 4, "kernel_channels": 4}, epochs=2, lr=1e-2,
                            window=16, ensemble=2, validate_every=1)
LOGS = {"log.txt"}  # a log says when each line was written: the one file that is not the same twice


def _files(run_dir):
    return {path.relative_to(run_dir).as_posix(): path.read_bytes() for path in sorted(run_dir.rglob("*"))
            if path.is_file() and path.name not in LOGS}


def test_a_resumed_run_writes_every_file_byte_for_byte_as_an_uninterrupted_one(aggregate_store, tmp_path,
                                                                                monkeypatch):
    straight = fit_head(aggregate_store, ["SRC"], tmp_path / "straight", CONFIG)
    saved = training.save_checkpoint
    calls = []

    def stop_after_three(run_dir, checkpoint):
        saved(run_dir, checkpoint)
        calls.append(checkpoint)
        if len(calls) == 3:  # member 1 after its first epoch: member 0's head file is written already
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        fit_head(aggregate_store, ["SRC"], tmp_path / "resumed", CONFIG)
    monkeypatch.setattr(training, "save_checkpoint", saved)
    resumed = fit_head(aggregate_store, ["SRC"], tmp_path / "resumed", CONFIG, resume=True)
    expected, got = _files(straight), _files(resumed)
    assert {"head_00.safetensors", "head_01.safetensors", "run.json", "loss.csv"} <= set(expected)
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []
