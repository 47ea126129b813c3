"""`dgss datasets [--data-root PATH] [--check]` on fixture data roots."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dgss.pipelines.cli import app, main

Tree = Callable[[Path, dict[str, str]], Path]

DRIVE_TINY = {
    "training/images/21_training.tif": "image",
    "training/1st_manual/21_manual1.gif": "label",
    "training/mask/21_training_mask.gif": "fov",
    "test/images/01_test.tif": "image",
    "test/1st_manual/01_manual1.gif": "label",
    "test/mask/01_test_mask.gif": "fov",
}


@pytest.fixture
def datasets_root(tmp_path: Path, datasets_tree: Tree) -> Path:
    """A data root with a complete tiny DRIVE and a STARE with a label whose image is lost."""
    datasets_tree(tmp_path / "DRIVE", DRIVE_TINY)
    datasets_tree(tmp_path / "STARE", {
        "stare-images/im0001.ppm": "image",
        "stare-images/im0002.ppm": "image",
        "labels-ah/im0001.ah.ppm": "label",
        "labels-ah/im0003.ah.ppm": "label",
    })
    return tmp_path


def _rows(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines()[2:] if line and not line.startswith(" ")}


def test_table_lists_every_dataset(datasets_root: Path) -> None:
    result = CliRunner().invoke(app, ["datasets", "--data-root", str(datasets_root)])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert "found" in rows["DRIVE"] and "training 1, test 1" in rows["DRIVE"] and "published" in rows["DRIVE"]
    assert "found, incomplete" in rows["STARE"] and "derived" in rows["STARE"]
    assert "missing" in rows["HRF"] and str(datasets_root / "HRF") in rows["HRF"]
    assert "found" in rows["SYNTH-A"] and "training 10, test 10" in rows["SYNTH-A"]
    assert not any(name.startswith("folder:") for name in rows)
    assert "im0003.ah.ppm: label without an image" in result.output


def test_data_root_from_environment(datasets_root: Path) -> None:
    result = CliRunner().invoke(app, ["datasets"], env={"DGSS_DATA_ROOT": str(datasets_root)})
    assert result.exit_code == 0 and f"data root: {datasets_root}" in result.output


def test_check_reports_every_problem_and_exits_1(datasets_root: Path, datasets_write: Callable[..., Path]) -> None:
    datasets_write(datasets_root / "DRIVE/test/1st_manual/01_manual1.gif", "label", shape=(20, 20))
    result = CliRunner().invoke(app, ["datasets", "--data-root", str(datasets_root), "--check"])
    assert result.exit_code == 1
    assert "2 problem(s):" in result.output
    assert "STARE: " in result.output and "DRIVE: " in result.output and "01_manual1.gif: size 20x20" in result.output


def test_main_exit_code_then_clean_root_passes(
    datasets_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["dgss", "datasets", "--data-root", str(datasets_root), "--check"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 1 and "problem(s)" in capsys.readouterr().out
    shutil.rmtree(datasets_root / "STARE")
    clean = CliRunner().invoke(app, ["datasets", "--data-root", str(datasets_root), "--check"])
    assert clean.exit_code == 0, clean.output
    assert "problem" not in clean.output and "found" in _rows(clean.output)["DRIVE"]
