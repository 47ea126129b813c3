"""`dgss demo`: the whole method on data that needs no download, and the same pipeline on real datasets.

Train a backbone on the source domains' images (labels never read), extract anchored features of sources and
targets, fit T&S-FreqAgg and the plain U-Net baseline on the sources, and score both on the sources' held-out
images and on the unseen targets. Every stage reuses what an earlier run cached: the backbone, the store's done
images and finished head runs, so a second run only re-scores.

The scores are the same on any machine: everything random is seeded, and the stages run with a fixed number of
torch threads and torch's deterministic algorithms (a float sum split over more threads adds in another order).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.report import draw_table, format_table, write_csv
from dgss.aggregate.settings import TrainingSettings as Training
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.errors import OtherSettingsError
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.plotting import write_png
from dgss.pretrain.presets import BackboneTrainingConfig
from dgss.pretrain.training import train_backbone

SCORE_COLUMNS = ("head", "dataset", "role", "dice", "iou", "auc_roc", "auc_pr", "sensitivity", "specificity",
                 "accuracy")


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """Sizes of one demo run; the defaults fit 10 minutes on 2 CPU cores."""

    out: Path = Path("dgss-output/demo")
    sources: tuple[str, ...] = ("SYNTH-A", "SYNTH-B")
    targets: tuple[str, ...] = ("SYNTH-C",)
    data_root: Path | None = None
    backbone: str | None = None  # an existing backbone folder; None trains one on the sources
    backbone_preset: str = "tiny"
    backbone_steps: int = 300
    canvas_size: int = 256
    timesteps: tuple[int, ...] | None = (3, 25, 125, 500)  # 4 of the paper's 8 (mapped onto T = 1000)
    workers: int = 2
    window: int | None = Training.window.default  # random training windows, as fit-head's (None: whole canvases)
    head_epochs: int = 40  # fewer than fit-head's default, to keep the demo within its 10 minutes
    head_width: int = 32
    baseline_epochs: int = 30
    baseline_width: int = 16
    dice_weight: float = 0.5  # a soft-Dice term for both heads: cross-entropy alone under-calls thin vessels
    validation_fraction: float = Training.validation_fraction.default  # chooses each head's epoch and threshold
    seed: int = 0
    threads: int = 2  # torch threads of every stage, whatever the machine has: the scores depend on it

    @classmethod
    def for_real_data(cls, data_root: Path, out: Path, backbone: str | None, workers: int) -> DemoConfig:
        """DRIVE, STARE -> CHASE_DB1 at 512 px: the given (e.g. shipped) backbone, else one trained with `small`."""
        return cls(
            out=out, sources=("DRIVE", "STARE"), targets=("CHASE_DB1",), data_root=data_root, backbone=backbone,
            workers=workers,
            backbone_preset="small", backbone_steps=4000, canvas_size=512,
            head_epochs=40, head_width=64, baseline_epochs=40, baseline_width=32,
        )


def run_demo(config: DemoConfig) -> list[dict[str, Any]]:
    """Run (or resume) every stage; print each stage's wall time, the score table and the total; return the rows."""
    with reproducible(config.threads):
        print(f"demo: {config.threads} torch threads, deterministic algorithms, seed {config.seed}", flush=True)
        return _run_stages(config)


@contextmanager
def reproducible(threads: int) -> Iterator[None]:
    """Fixed torch threads and deterministic algorithms for the duration; the caller's settings after."""
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


def _run_stages(config: DemoConfig) -> list[dict[str, Any]]:
    started = time.perf_counter()
    out = config.out
    with _phase("backbone"):
        model = config.backbone or str(_train_backbone(config, out / "backbone"))
    store = out / "features.zarr"
    with _phase("extraction"):
        keys = {
            run_extraction(
                ExtractionRequest(
                    dataset=dataset, store=store, model=model, data_root=config.data_root,
                    timesteps=config.timesteps, input_size=config.canvas_size, workers=config.workers,
                    command="dgss demo",
                )
            ).key
            for dataset in (*config.sources, *config.targets)
        }
    (key,) = keys  # one backbone, one config: every dataset is cached under the same key
    heads = {
        "tsfreqagg": HeadTrainingConfig(head="tsfreqagg", head_params={"width": config.head_width},
                                        epochs=config.head_epochs, dice_weight=config.dice_weight, seed=config.seed,
                                        window=config.window, validation_fraction=config.validation_fraction),
        "unet": HeadTrainingConfig(head="unet", head_params={"base_channels": config.baseline_width},
                                   epochs=config.baseline_epochs, dice_weight=config.dice_weight, seed=config.seed,
                                   window=config.window, validation_fraction=config.validation_fraction),
    }
    rows = []
    for name, training in heads.items():
        with _phase(f"{name} fit and scoring"):
            run_dir = _fit_once(store, config.sources, key, out / "runs" / name, training)
            results = evaluate_run(run_dir, store, [*config.sources, *config.targets], out / "report" / name,
                                   overwrite=True)
        for dataset, scores in results["targets"].items():
            role = "unseen target" if dataset in config.targets else f"source ({scores['split']} split)"
            rows.append({"head": name, "dataset": dataset, "role": role, **scores["pooled"]})
    _write_summary(rows, out / "report")
    print(f"demo total: {time.perf_counter() - started:.0f} s", flush=True)
    return rows


@contextmanager
def _phase(name: str) -> Iterator[None]:
    """Print a stage's wall time when it ends, so a slow stage is seen as it happens."""
    started = time.perf_counter()
    yield
    print(f"demo {name}: {time.perf_counter() - started:.0f} s", flush=True)


def _train_backbone(config: DemoConfig, folder: Path) -> Path:
    """Train the demo backbone; an interrupted run resumes, a finished one returns at once."""
    training = BackboneTrainingConfig.from_preset(  # a throwaway backbone: a small, quick sample grid
        config.backbone_preset, steps=config.backbone_steps, image_size=config.canvas_size, seed=config.seed,
        sample_count=4, sample_steps=10,
    )
    resume = (folder / "checkpoints").is_dir() and any((folder / "checkpoints").iterdir())
    return train_backbone(training, config.sources, folder, resume=resume, data_root=config.data_root)


def _fit_once(store: Path, sources: tuple[str, ...], key: str, run_dir: Path, training: HeadTrainingConfig) -> Path:
    """Fit the head unless `run_dir` holds a finished run of these settings on this cache (a stopped one
    continues; a run of other settings, or of a default that has changed since, is trained again)."""
    try:
        return fit_head(store, list(sources), run_dir, training, key=key, resume=True)
    except OtherSettingsError:
        return fit_head(store, list(sources), run_dir, training, key=key, overwrite=True)


def _write_summary(rows: list[dict[str, Any]], report: Path) -> None:
    """The comparison table on stdout and as CSV and PNG."""
    report.mkdir(parents=True, exist_ok=True)
    print(format_table(rows, SCORE_COLUMNS))
    write_csv(report / "summary.csv", rows, SCORE_COLUMNS)
    write_png(report / "summary.png", draw_table(rows, SCORE_COLUMNS, title="dgss demo: pooled scores inside the FOV"))
    print(f"report: {report.resolve()}")

