"""dgss: retinal vessel segmentation from cached diffusion features, as a Python API.

Every `dgss` command is a thin layer over one of these functions, so a notebook can do what the CLI does.
Names are imported on first use (PEP 562): `import dgss` stays cheap and does not import torch.
"""

import importlib
import importlib.metadata
from typing import Any

__version__ = importlib.metadata.version("dgss")

_EXPORTS = {
    "ExtractionRequest": "dgss.pipelines.extract_job",
    "run_extraction": "dgss.pipelines.extract_job",
    "HeadTrainingConfig": "dgss.aggregate.training",
    "fit_head": "dgss.aggregate.training",
    "evaluate_run": "dgss.aggregate.evaluation",
    "load_run": "dgss.pipelines.predictor",
    "predict_images": "dgss.pipelines.predict",
    "BackboneTrainingConfig": "dgss.pretrain.presets",
    "train_backbone": "dgss.pretrain.training",
    "FeatureStore": "dgss.store",
    "view_names": "dgss.datasets",
}
_RENAMED = {"open_store": ("dgss.store", "open")}  # `dgss.open` would shadow the builtin in `from dgss import *`
_SUBPACKAGES = ("aggregate", "backbone", "datasets", "extract", "pipelines", "pretrain", "store")
"""Reachable as attributes after a plain `import dgss` (`dgss.store.open(...)`), imported on first use."""

__all__ = sorted([*_EXPORTS, *_RENAMED, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _RENAMED:
        module, attribute = _RENAMED[name]
        return getattr(importlib.import_module(module), attribute)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"dgss.{name}")
    raise AttributeError(f"module 'dgss' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBPACKAGES})
