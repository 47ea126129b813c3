"""The release's two-phase training (``phases=experts-then-gate``): the epochs split, what each phase trains, the
resumption of a stopped run, and old runs loading as they were trained."""

import json

import pytest
import torch
from typer.testing import CliRunner

from dgss.aggregate import training
from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.heads import build_head
from dgss.aggregate.phases import Phase, epoch_phase
from dgss.aggregate.run import RUN_FILE, load_run
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.errors import DgssError
from dgss.pipelines.app import app
from dgss.pipelines.cli import main  # noqa: F401  registers every command on `app`

TINY = {"width": 8, "kernel_channels": 4}


def _config(epochs: int, **fields) -> HeadTrainingConfig:
    return HeadTrainingConfig(**{"head": "tsfreqagg", "head_params": TINY, "epochs": epochs, "window": 16,
                                 "lr": 1e-2, "validation_fraction": 0.0, **fields})


def test_experts_take_the_first_half_of_the_epochs_rounded_up():
    assert [epoch_phase("experts-then-gate", 5, epoch) for epoch in range(5)] == [Phase.experts] * 3 + [Phase.gate] * 2
    assert {epoch_phase("joint", 5, epoch) for epoch in range(5)} == {Phase.joint}


def test_two_phases_are_refused_without_a_pixel_gate_or_a_second_epoch():
    with pytest.raises(DgssError, match="gate=mean: use phases=joint"):
        _config(2, phases="experts-then-gate", head_params={**TINY, "gate": "mean"})
    with pytest.raises(DgssError, match="head mlp has no time gate"):
        HeadTrainingConfig(head="mlp", epochs=2, phases="experts-then-gate")
    with pytest.raises(DgssError, match="at least 2 epochs, got 1"):
        _config(1, phases="experts-then-gate")
    with pytest.raises(DgssError, match="phases must be one of joint, experts-then-gate"):
        _config(2, phases="gate-first")


def _saved_heads(monkeypatch) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Record (phase, weights) of every checkpoint fit-head writes."""
    saved, save = [], training.save_checkpoint

    def record(run_dir, checkpoint):
        saved.append((checkpoint.phase, {name: value.clone() for name, value in checkpoint.head.items()}))
        save(run_dir, checkpoint)

    monkeypatch.setattr(training, "save_checkpoint", record)
    return saved


def test_the_experts_phase_leaves_the_gate_and_the_gate_phase_changes_only_the_gate(aggregate_store, tmp_path,
                                                                                    monkeypatch):
    saved = _saved_heads(monkeypatch)
    fit_head(aggregate_store, ["SRC"], tmp_path / "run", _config(2, phases="experts-then-gate"))
    (first_phase, experts), (second_phase, gated) = saved
    assert (first_phase, second_phase) == ("experts", "gate")
    start = build_head("tsfreqagg", load_run(tmp_path / "run").heads[0].spec, seed=0, **TINY).state_dict()
    gate = {name for name in experts if name.startswith("time_gate.")}
    assert gate and all(torch.equal(experts[name], start[name]) for name in gate)
    assert any(not torch.equal(experts[name], start[name]) for name in set(experts) - gate)
    assert all(not torch.equal(gated[name], experts[name]) for name in gate)
    assert all(torch.equal(gated[name], experts[name]) for name in set(experts) - gate)  # BatchNorm buffers too


@pytest.mark.parametrize("stop_after", [1, 3])
def test_a_stopped_two_phase_run_resumes_to_the_uninterrupted_heads(aggregate_store, tmp_path, monkeypatch,
                                                                    stop_after):
    config = _config(4, phases="experts-then-gate")
    whole = fit_head(aggregate_store, ["SRC"], tmp_path / "whole", config)
    saves, save = [], training.save_checkpoint

    def stop(run_dir, checkpoint):
        save(run_dir, checkpoint)
        saves.append(checkpoint.phase)
        if len(saves) == stop_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", stop)
    with pytest.raises(KeyboardInterrupt):
        fit_head(aggregate_store, ["SRC"], tmp_path / "stopped", config)
    assert saves[-1] == ("experts" if stop_after == 1 else "gate")
    monkeypatch.setattr(training, "save_checkpoint", save)
    resumed = fit_head(aggregate_store, ["SRC"], tmp_path / "stopped", config, resume=True)
    for name, value in load_run(whole).heads[0].state_dict().items():
        torch.testing.assert_close(load_run(resumed).heads[0].state_dict()[name], value, rtol=0, atol=0)


def test_a_run_recorded_before_the_release_options_loads_as_it_was_trained(aggregate_store, tmp_path):
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", _config(1))
    before = evaluate_run(run_dir, None, ["TGT"], tmp_path / "before", overlays=0)["targets"]["TGT"]["pooled"]
    record = json.loads((run_dir / RUN_FILE).read_text())
    del record["training"]["phases"], record["training"]["head_params"]["residual_norm"]  # as older code wrote it
    (run_dir / RUN_FILE).write_text(json.dumps(record))
    assert load_run(run_dir).heads[0].config.residual_norm == "batch"
    after = evaluate_run(run_dir, None, ["TGT"], tmp_path / "after", overlays=0)["targets"]["TGT"]["pooled"]
    assert after == before


def test_fit_head_takes_the_phases_option(aggregate_store, tmp_path):
    result = CliRunner().invoke(app, [
        "fit-head", "--store", str(aggregate_store), "--source", "SRC", "--out", str(tmp_path / "run"),
        "--epochs", "2", "--window", "16", "--validation-fraction", "0", "--phases", "experts-then-gate",
        "--head-param", "width=8", "--head-param", "kernel_channels=4"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / RUN_FILE).read_text())["training"]["phases"] == "experts-then-gate"
