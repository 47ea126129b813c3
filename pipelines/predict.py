"""`dgss predict` as a Python function: new images through the run's own extraction config and its trained heads.

This is the one place where both stages meet: features are computed with the UNet exactly as the run's cache was
made (same config, checked by the model digest), then fed to the heads; nothing is written to a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dgss.aggregate.report import write_png
from dgss.aggregate.data import image_to_tensor
from dgss.aggregate.run import DEFAULT_TILE, DEFAULT_TILE_CONTEXT, image_prediction, load_run
from dgss.extract.backbone import load_backbone
from dgss.extract.config import ExtractionConfig
from dgss.extract.datasets import derive_fov, read_image
from dgss.extract.device import check_device
from dgss.extract.extractor import FeatureExtractor, canvas_fill
from dgss.extract.preprocess import to_canvas
from dgss.extract.shipped import resolve_model
from dgss.store import FeatureStore
from dgss.store.errors import DgssError, ModelError, StoreError

VESSEL_TINT = np.array([40, 255, 80], dtype=np.float32)


@dataclass(frozen=True)
class Prediction:
    """Files written for one input image."""

    image: Path
    probability: Path
    mask: Path
    overlay: Path


def predict_images(
    run_dir: str | Path,
    images: list[Path],
    out_dir: str | Path,
    *,
    model: str | None = None,
    device: str = "cpu",
    tile: int | None = DEFAULT_TILE,
    tile_context: int = DEFAULT_TILE_CONTEXT,
    field_of_view_deg: float = 45.0,
) -> list[Prediction]:
    """Segment `images`; write `<stem>_prob.png`, `<stem>_mask.png` and `<stem>_overlay.png` per image.

    The backbone is `model`, else the one recorded in the run's store entry, else the shipped one; it must have
    the digest the run's features were extracted with. `field_of_view_deg` is the field angle of the camera that
    took the images: it sets their size on the canvas when the run's cache spans a field angle (`canvas_field_deg`).
    """
    _check_distinct_stems(images)
    check_device(device)
    run = load_run(run_dir, device, tile=tile, tile_context=tile_context)
    config = ExtractionConfig.from_dict(run.record.extraction_config)
    backbone = load_backbone(resolve_model(model or _recorded_model(run.record.store, run.key)), device)
    if backbone.digest != config.model_digest:
        raise ModelError(
            f"model {backbone.name} (digest {backbone.digest[:16]}) is not the one run {run_dir} was trained on "
            f"(digest {config.model_digest[:16]}); pass --model with that backbone"
        )
    extractor = FeatureExtractor(backbone, config)
    fill = canvas_fill(config.canvas_field_deg, field_of_view_deg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [_predict_one(path, run, extractor, out, fill) for path in images]


def output_stem(path: Path) -> str:
    """The name an image's outputs start with: "im0001.ppm.gz" -> "im0001", "a.7.jpg" -> "a.7"."""
    return Path(path.name.removesuffix(".gz")).stem


def _check_distinct_stems(images: list[Path]) -> None:
    """Refuse, before any work, two inputs whose outputs would overwrite each other (a/22.png and b/22.png)."""
    seen: dict[str, Path] = {}
    for path in images:
        other = seen.setdefault(output_stem(path), path)
        if other != path:
            raise DgssError(f"{other} and {path} would both write {output_stem(path)}_*.png: segment them into "
                             "separate --out folders")


def _recorded_model(store: str, key: str) -> str | None:
    """The model path/id written into the store entry the run was trained on, when that store is still there."""
    try:
        cache = FeatureStore(store, create=False)
    except StoreError:
        return None
    for info in cache.entries():
        if info.key == key:
            return cache.entry(info.dataset, key).attrs.get("model")
    return None


def _predict_one(path: Path, run, extractor: FeatureExtractor, out: Path, fill: float) -> Prediction:
    image = read_image(path)
    fov = derive_fov(image)
    canvas = to_canvas(image, np.zeros_like(fov), fov, canvas_size=extractor.config.canvas_size,
                       fov_crop=extractor.config.fov_crop, fill=fill)
    features = extractor.feature_maps(canvas.image, canvas.fov)
    batch = {f"features/{name}": maps[None] for name, maps in features.items()}
    batch["image"] = image_to_tensor(canvas.image)[None]
    prob, votes = image_prediction(run, batch)
    probability = canvas.geometry.to_native(prob) * fov
    mask = canvas.geometry.to_native(votes) > 0.5
    mask &= fov
    stem = output_stem(path)
    written = Prediction(path, out / f"{stem}_prob.png", out / f"{stem}_mask.png", out / f"{stem}_overlay.png")
    write_png(written.probability, Image.fromarray(np.round(probability * 255).astype(np.uint8)))
    write_png(written.mask, Image.fromarray(mask.astype(np.uint8) * 255))
    write_png(written.overlay, Image.fromarray(_overlay(image, mask)))
    return written


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with predicted vessels tinted green, so a reader sees what was found where."""
    tinted = image.astype(np.float32)
    tinted[mask] = 0.35 * tinted[mask] + 0.65 * VESSEL_TINT
    return tinted.astype(np.uint8)
