"""bench/train_shipped_backbone.py: the same command trains piece after piece into the named run folder with the
recipe it names, then ships it under that name (with the recipe shrunk, so that a piece takes a second)."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

from dgss.backbone import shipped

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "train_shipped_backbone.py"


def _load_script(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as when the script runs: its sibling modules import
    spec = importlib.util.spec_from_file_location("train_shipped_backbone", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_continues_its_named_run_piece_by_piece_then_ships_it(tmp_path, photo_pool, monkeypatch, capsys):
    pool = photo_pool
    script = _load_script(monkeypatch)
    monkeypatch.setattr(script, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(script, "RUN_SETTINGS", dict(checkpoint_every=10, sample_count=1, sample_steps=1))
    tiny = dict(block_out_channels=(8, 16), norm_num_groups=8, resolution=32, image_size=36, batch_size=1)
    monkeypatch.setattr(script, "recipe", lambda name: {**script.CANDIDATES[name].overrides, **tiny})
    monkeypatch.setattr(shipped, "BACKBONES_DIR", tmp_path / "backbones")
    command = ["train_shipped_backbone.py", "--pool", str(pool), "--name", "fundus-test", "--recipe", "cosine",
               "--steps", "3", "--time-budget-minutes", "0"]
    run = tmp_path / "runs" / "fundus-test"
    for step in (1, 2):
        monkeypatch.setattr(sys, "argv", command)
        script.main()
        assert f"step {step} of 3" in capsys.readouterr().out
        assert torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["step"] == step
    monkeypatch.setattr(sys, "argv", [*command[:-2], "--ship"])
    script.main()
    assert "--model fundus-test" in capsys.readouterr().out
    assert (tmp_path / "backbones" / "fundus-test" / "config.json").is_file()
    assert "steps: 3 of 3," in (tmp_path / "backbones" / "fundus-test" / "MODEL_CARD.md").read_text()
    assert json.loads((run / "training.json").read_text())["config"]["lr_schedule"] == "cosine"
