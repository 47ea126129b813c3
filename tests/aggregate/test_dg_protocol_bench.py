"""bench/dg_protocol.py's run_one with the real fit-head and evaluate: a finished run is reused only when it was
trained with the options asked for, so a changed option or default never slips an old run into a table."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "dg_protocol.py"


def quick(epochs: int) -> list[str]:
    return ["--head-param", "hidden=[4]", "--epochs", str(epochs), "--window", "16"]


@pytest.fixture
def dg_protocol(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("dg_protocol", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_finished_run_is_reused_only_under_its_own_options(dg_protocol, aggregate_store, tmp_path, capfd):
    dgss = str(Path(sys.executable).with_name("dgss"))
    run_dir = tmp_path / "runs" / "mlp" / "seed0"

    def run(options):
        return dg_protocol.run_one(dgss, aggregate_store, run_dir, ["SRC"], ["TGT"], "mlp", 0, options, None)

    first = run(quick(1))
    heads = (run_dir / "head_00.safetensors").read_bytes()
    again = run(quick(1))
    assert again["fit_s"] == first["fit_s"]  # kept: the fit's own seconds, not the check's
    assert json.loads((run_dir / "evaluation" / "TGT" / "scores.json").read_text())["targets"]["TGT"]["n_images"] == 2
    capfd.readouterr()
    with pytest.raises(SystemExit, match="failed: .*fit-head"):
        run(quick(2))
    assert "other settings (training.epochs differ)" in capfd.readouterr().err
    assert (run_dir / "head_00.safetensors").read_bytes() == heads
