"""The demo's pipeline on a reduced size: every stage runs, the report is written, a second run reuses the cache."""

from pathlib import Path

import pytest

from dgss.pipelines.demo import DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[DemoConfig, list[dict]]:
    config = DemoConfig(
        out=tmp_path_factory.mktemp("demo"),
        sources=("SYNTH-A-4x64", "SYNTH-B-4x64"),
        targets=("SYNTH-C-4x64",),
        backbone_steps=4,
        canvas_size=64,
        timesteps=(10, 100),
        workers=0,
        head_epochs=2,
        head_width=8,
        baseline_epochs=2,
    )
    return config, run_demo(config)


def test_the_demo_scores_both_heads_on_sources_and_the_unseen_target(demo_run):
    config, rows = demo_run
    assert {(row["head"], row["dataset"]) for row in rows} == {
        (head, dataset) for head in ("tsfreqagg", "unet") for dataset in ("SYNTH-A-4x64", "SYNTH-B-4x64", "SYNTH-C-4x64")
    }
    target = [row for row in rows if row["dataset"] == "SYNTH-C-4x64"]
    assert all(row["role"] == "unseen target" and 0 <= row["auc_roc"] <= 1 for row in target)


def test_the_demo_writes_its_report(demo_run):
    config, _ = demo_run
    report = Path(config.out) / "report"
    assert (report / "summary.csv").read_text().count("\n") == 1 + 6
    assert (report / "summary.png").stat().st_size > 0
    assert list((report / "tsfreqagg" / "overlays").glob("*.png"))
    assert (Path(config.out) / "runs" / "tsfreqagg" / "loss.png").is_file()


def test_a_second_demo_run_reuses_the_backbone_the_features_and_the_heads(demo_run):
    config, rows = demo_run
    out = Path(config.out)
    cached = [out / "backbone" / "diffusion_pytorch_model.safetensors", out / "runs" / "tsfreqagg" / "run.json",
              out / "runs" / "unet" / "run.json"]
    before = [path.stat().st_mtime_ns for path in cached]
    again = run_demo(config)
    assert [path.stat().st_mtime_ns for path in cached] == before
    assert again == rows
