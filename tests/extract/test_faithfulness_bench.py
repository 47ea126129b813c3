"""bench/faithfulness.py: the measure on known features, the comparisons it makes, and the commands it prints."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "faithfulness.py"


@pytest.fixture
def faithfulness(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("faithfulness", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "faithfulness", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_ratio_is_the_view_distance_over_the_spread_between_images(faithfulness):
    reference = np.zeros((3, 2, 4), dtype=np.float32)  # (image, timestep, values)
    reference[1, :, 0], reference[2, :, 1] = 3.0, 4.0  # pairwise distances 3, 4 and 5: mean 4
    moved = reference.copy()
    moved[:, 0, 2] = 1.0  # every image moves by 1 at timestep 0, not at all at timestep 1
    view, between = faithfulness.distances(reference, moved)
    assert np.allclose(view, [1.0, 0.0]) and np.allclose(between, [4.0, 4.0])


def test_every_mode_is_compared_with_its_view_and_noise_with_fresh_draws(faithfulness):
    rows = faithfulness.comparisons("DRIVE", 1, draws=4, inversion_steps=50)
    assert [row.name for row in rows] == ["anchored", "ddim (50 steps)", "noised (4 draws)",
                                          "noised (4 draws), fresh draws", "noised (4 draws), other draws, no view"]
    assert all(row.reference.dataset == "DRIVE" for row in rows)
    assert [row.moved.dataset for row in rows] == ["DRIVE+photo1"] * 4 + ["DRIVE"]
    assert dict(rows[3].moved.options)["seed"] == 1 and dict(rows[3].reference.options)["seed"] == 0


def test_print_only_lists_one_extraction_per_dataset_and_mode(faithfulness, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["faithfulness.py", "--store", "s.zarr", "--images", "3", "--timesteps",
                                      "250,875", "--print-only"])
    faithfulness.main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8  # anchored, ddim, noised: base and view each; noised seed 1: view and base
    assert lines[2] == ("dgss extract --dataset DRIVE --store s.zarr --split training --limit 3 --timesteps "
                        "250,875 --mode ddim --inversion-steps 50")
    assert sum("--seed 1" in line for line in lines) == 2


def test_modes_choose_the_comparisons_and_so_the_extractions(faithfulness, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["faithfulness.py", "--store", "s.zarr", "--timesteps", "250", "--modes",
                                      "anchored", "--print-only"])
    faithfulness.main()
    assert [line.split()[3] for line in capsys.readouterr().out.splitlines()] == ["DRIVE", "DRIVE+photo1"]
