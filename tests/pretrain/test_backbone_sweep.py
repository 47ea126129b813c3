"""bench/backbone_sweep.py: each candidate trains for the same CPU budget in its own run folder, a rerun keeps
finished runs and their probe scores and continues the others, cosine takes its steps from v1's run (tiny recipes,
the probe stubbed: it needs DRIVE and CHASE_DB1)."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """The script with tiny recipes and a probe stub that records which runs it scored, at which step."""
    monkeypatch.syspath_prepend(str(BENCH))  # as when the script runs: its sibling modules import
    spec = importlib.util.spec_from_file_location("backbone_sweep", BENCH / "backbone_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tiny = dict(block_out_channels=(8, 16), norm_num_groups=8, resolution=32, image_size=36, batch_size=1)
    monkeypatch.setattr(module, "recipe", lambda name: {**module.CANDIDATES[name].overrides, **tiny})
    monkeypatch.setattr(module, "RUN_SETTINGS", dict(checkpoint_every=10, sample_count=1, sample_steps=1))
    module.probed = []

    def _score(run, options):
        module.probed.append(run.name)
        scores = {target: {"dice": 0.5, "auc_roc": 0.9} for target in module.TARGETS}
        return {"scores": scores, "features": 4, "threshold": 0.5, "fit_s": 0.0, "score_s": 0.0}

    monkeypatch.setattr(module, "score_run", _score)
    return module


def _steps(run: Path) -> int:
    return json.loads((run / "training.json").read_text())["config"]["steps"]


def test_candidates_train_once_for_their_budget_and_a_rerun_reuses_or_continues_them(sweep, tmp_path, photo_pool, capsys):
    pool = photo_pool
    runs, out = tmp_path / "runs", tmp_path / "results" / "sweep.csv"
    command = ["--pool", str(pool), "--runs-dir", str(runs), "--out", str(out), "--limit", "1"]

    with pytest.raises(SystemExit, match="finish v1 first"):
        sweep.main([*command, "--minutes-per-candidate", "0", "--candidates", "cosine"])
    # A budget of 0 is spent by the first step; cosine (listed first) trains after v1, for v1's steps.
    sweep.main([*command, "--minutes-per-candidate", "0", "--candidates", "cosine,v1"])
    assert sweep.probed == ["v1", "cosine"]
    assert _steps(runs / "cosine") == 1 and _steps(runs / "v1") == sweep.UNBOUNDED_STEPS
    printed = capsys.readouterr().out
    assert "| v1 | baseline" in printed and "| cosine |" in printed

    sweep.main([*command, "--minutes-per-candidate", "0", "--candidates", "v1,cosine"])
    assert sweep.probed == ["v1", "cosine"]  # both finished and scored at their step: nothing done again
    assert "kept" in capsys.readouterr().out

    # More minutes continue v1 (rescored at its new step); cosine has reached its steps; x0 joins the table.
    sweep.main([*command, "--minutes-per-candidate", "0.02", "--candidates", "v1,cosine,x0"])
    assert sweep.probed == ["v1", "cosine", "v1", "x0"]
    with out.open() as handle:
        rows = {row["candidate"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["v1", "x0", "cosine"]  # the table's order
    assert int(rows["v1"]["steps"]) > 1 and rows["cosine"]["steps"] == "1" and rows["v1"]["limit"] == "1"
    assert float(rows["v1"]["cpu_min"]) >= 0.02 and rows["x0"]["CHASE_DB1_dice"] == "0.5000"
    assert "Highest CHASE_DB1 Dice" in out.with_suffix(".md").read_text()


def test_an_unknown_candidate_or_probe_option_stops_before_training(sweep, tmp_path):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--candidates", "v1,huge"])
    with pytest.raises(SystemExit):
        sweep.parse_args(["--no-such-probe-option", "1"])
    args, options = sweep.parse_args(["--threads", "2", "--limit", "3", "--timesteps", "10,50"])
    assert (args.threads, options.limit, options.timesteps) == (2, 3, [10, 50])
