"""`dgss predict` as a Python function: new images through the run's own extraction config and its trained heads.

This is the one place where both stages meet: features are computed with the UNet exactly as the run's cache was
made (same config, checked by the model digest), then fed to the heads; nothing is written to a store.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from dgss.aggregate.data import head_image
from dgss.aggregate.inference import image_prediction
from dgss.aggregate.run import DEFAULT_TILE, DEFAULT_TILE_CONTEXT, Run, load_run, run_store
from dgss.aggregate.settings import InferenceSettings
from dgss.backbone.loading import load_backbone
from dgss.backbone.shipped import backbone_reference, resolve_model
from dgss.datasets import derive_fov, read_image
from dgss.datasets.image_io import IMAGE_SUFFIXES, file_stem, is_image_file, read_mask
from dgss.device import check_device
from dgss.errors import DgssError, ModelError
from dgss.extract.config import ExtractionConfig
from dgss.extract.extractor import FeatureExtractor, canvas_fill
from dgss.extract.preprocess import check_fundus_photo, to_canvas
from dgss.files import write_bytes_atomic
from dgss.plotting import write_png
from dgss.progress import Progress, log_file
from dgss.store import FeatureStore
from dgss.store.schema import feature_array

logger = logging.getLogger("dgss")

VESSEL_TINT = np.array([40, 255, 80], dtype=np.float32)
PROVENANCE_FILE = "provenance.json"


@dataclass(frozen=True)
class Prediction:
    """Files for one input image; `skipped` when they all existed and `skip_existing` left them as they were."""

    image: Path
    probability: Path
    mask: Path
    overlay: Path
    probability_tif: Path | None = None
    skipped: bool = False

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file this image's prediction writes."""
        tif = () if self.probability_tif is None else (self.probability_tif,)
        return (self.mask, self.probability, self.overlay, *tif)


def predict_images(
    run_dir: str | Path,
    images: Sequence[str | Path],
    out_dir: str | Path,
    *,
    model: str | None = None,
    device: str = "cpu",
    tile: int | None = DEFAULT_TILE,
    tile_context: int = DEFAULT_TILE_CONTEXT,
    field_of_view_deg: float = 45.0,
    fov_dir: str | Path | None = None,
    threshold: float | str | None = None,
    save_probabilities: bool = False,
    skip_existing: bool = False,
    flips: bool | None = InferenceSettings.tta.default,
) -> list[Prediction]:
    """Segment `images` (files, or folders of image files); write `<stem>_prob.png`, `<stem>_mask.png` and
    `<stem>_overlay.png` per image, and `<stem>_prob.tif` (float32 probability) with `save_probabilities`; then
    `provenance.json` (run, backbone, thresholds, test-time flips, dgss version) and a `log.txt` of the run beside them.

    The backbone is `model`, else the one the run records (its store entry's, for older runs), else the shipped
    one; it must have
    the digest the run's features were extracted with. `field_of_view_deg` is the field angle of the camera that
    took the images: it sets their size on the canvas when the run's cache spans a field angle (`canvas_field_deg`).
    `fov_dir` holds a FOV mask per image (`<stem>.<any image suffix>`) used instead of the FOV derived from the
    photo. `threshold` replaces the members' stored decision thresholds (a probability, or "otsu": one per image
    that reads no label). `skip_existing` leaves images whose outputs all exist as they are (an interrupted run
    continues).
    """
    paths = expand_inputs(images)
    _check_distinct_stems(paths)
    masks = fov_masks(paths, Path(fov_dir)) if fov_dir is not None else {}
    out = Path(out_dir)
    planned = [_planned(path, out, save_probabilities) for path in paths]
    check_device(device)
    run = load_run(run_dir, device, tile=tile, tile_context=tile_context, threshold=threshold, flips=flips)
    extractor = run_extractor(run, run_dir, model, device)
    fill = canvas_fill(extractor.config.canvas_field_deg, field_of_view_deg)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with log_file(out), Progress(len(planned), "predict", "images") as progress:
        for plan in planned:
            if skip_existing and all(path.is_file() for path in plan.files):
                written.append(replace(plan, skipped=True))
            else:
                written.append(_predict_one(plan, masks.get(plan.image), run, extractor, fill))
            progress.step(image=plan.image.name, skipped="yes" if written[-1].skipped else "no")
    write_provenance(out / PROVENANCE_FILE, run, extractor, written)
    return written


def write_provenance(path: Path, run: Run, extractor: FeatureExtractor, written: Sequence[Prediction]) -> None:
    """What made the outputs beside it: the run, its backbone, the thresholds, whether test-time flips were on
    (they change every probability) and the dgss version, so that a folder of masks found later says where it came
    from."""
    record = {
        "run": str(run.path.resolve()),
        "key": run.key,
        "backbone": backbone_reference(extractor.backbone.name),
        "model_digest": extractor.config.model_digest,
        "thresholds": "otsu, per image" if run.per_image_threshold else list(run.thresholds),
        "tile": run.tile,
        "test_time_flips": run.flips,
        "dgss_version": importlib.metadata.version("dgss"),
        "images": [str(plan.image) for plan in written],
    }
    write_bytes_atomic(path, (json.dumps(record, indent=2) + "\n").encode())


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given and folders as the image files directly in them, sorted, each path once: folders are how
    a camera's or a study's photos arrive, and naming one is how nnU-Net users expect to segment them."""
    paths: list[Path] = []
    for given in map(Path, inputs):
        if not given.exists():
            raise DgssError(f"{given} does not exist: pass image files or folders of them")
        if not given.is_dir():
            paths.append(given)
            continue
        found = sorted(path for path in given.iterdir() if is_image_file(path))
        if not found:
            raise DgssError(f"folder {given} holds no image file ({' '.join(sorted(IMAGE_SUFFIXES))}, or those .gz): "
                            "pass a folder of photos, or the image files themselves")
        paths += found
    return list(dict.fromkeys(paths))


def fov_masks(images: list[Path], fov_dir: Path) -> dict[Path, Path]:
    """The FOV mask file of every image (the first `<stem>.<suffix>` in sorted order), checked before any work so
    that a long run does not stop at the first image without one."""
    if not fov_dir.is_dir():
        raise DgssError(f"FOV folder {fov_dir} does not exist: pass --fov a folder of masks named like the images")
    by_stem: dict[str, Path] = {}
    for path in sorted(fov_dir.iterdir()):
        if is_image_file(path):
            by_stem.setdefault(file_stem(path), path)
    for image in images:
        if file_stem(image) not in by_stem:
            raise DgssError(f"no FOV mask for {image} in {fov_dir}: add {file_stem(image)}.png (or another image "
                            "format) there, or leave out --fov to derive the FOV from the photo")
    return {image: by_stem[file_stem(image)] for image in images}


def _check_distinct_stems(images: list[Path]) -> None:
    """Refuse, before any work, two inputs whose outputs would overwrite each other (a/22.png and b/22.png)."""
    seen: dict[str, Path] = {}
    for path in images:
        other = seen.setdefault(file_stem(path), path)
        if other != path:
            raise DgssError(f"{other} and {path} would both write {file_stem(path)}_*.png: segment them into "
                             "separate --out folders")


def _planned(image: Path, out: Path, save_probabilities: bool) -> Prediction:
    """The output paths of one image."""
    stem = file_stem(image)
    tif = out / f"{stem}_prob.tif" if save_probabilities else None
    return Prediction(image, out / f"{stem}_prob.png", out / f"{stem}_mask.png", out / f"{stem}_overlay.png", tif)


def run_extractor(run: Run, run_dir: str | Path, model: str | None, device: str) -> FeatureExtractor:
    """The run's feature extractor, refusing a backbone other than the one its features came from."""
    config = ExtractionConfig.from_dict(run.record.extraction_config)
    recorded = run.record.backbone or _recorded_model(run_store(run.record, run.path), run.key)
    backbone = load_backbone(resolve_model(model or recorded), device)
    if backbone.digest != config.model_digest:
        raise ModelError(
            f"model {backbone.name} (digest {backbone.digest[:16]}) is not the one run {run_dir} was trained on "
            f"(digest {config.model_digest[:16]}); pass --model with that backbone"
        )
    return FeatureExtractor(backbone, config)


def _recorded_model(store: str, key: str) -> str | None:
    """The model path/id written into the store entry the run was trained on (for a run.json from before runs
    recorded their backbone), when that store can still be read.

    Only a hint: whatever model is chosen must match the run's digest (checked next), so a store that is gone or
    unreachable (deleted, offline, no credentials for its URL) means the shipped backbone, with a warning.
    """
    try:
        cache = FeatureStore(store, create=False)
        for info in cache.entries():
            if info.key == key:
                return cache.entry(info.dataset, key).attrs.get("model")
    except Exception as error:  # any fsspec backend's error: the lookup is optional
        reason = str(error) if isinstance(error, DgssError) else f"{type(error).__name__}: {error}"
        logger.warning("cannot read the run's store %s (%s); using the shipped backbone unless --model is given",
                       store, reason)
    return None


def _fov(image: np.ndarray, path: Path, mask_path: Path | None) -> np.ndarray:
    """The given FOV mask, else the one derived from the photo; a mask of another size names both files."""
    if mask_path is None:
        return derive_fov(image)
    fov = read_mask(mask_path)
    if fov.shape != image.shape[:2]:
        raise DgssError(f"FOV mask {mask_path} is {fov.shape[1]}x{fov.shape[0]} px but {path} is "
                        f"{image.shape[1]}x{image.shape[0]} px: give a mask of the image's size")
    return fov


def _predict_one(plan: Prediction, mask_path: Path | None, run: Run, extractor: FeatureExtractor,
                 fill: float) -> Prediction:
    image = read_image(plan.image)
    fov = _fov(image, plan.image, mask_path)
    probability, mask = segment_image(image, fov, run, extractor, fill, name=str(plan.image))
    write_png(plan.probability, Image.fromarray(np.round(probability * 255).astype(np.uint8)))
    write_png(plan.mask, Image.fromarray(mask.astype(np.uint8) * 255))
    write_png(plan.overlay, Image.fromarray(_overlay(image, mask)))
    if plan.probability_tif is not None:
        _write_tif(plan.probability_tif, probability)
    return plan


def segment_image(image: np.ndarray, fov: np.ndarray, run: Run, extractor: FeatureExtractor, fill: float, *,
                  name: str) -> tuple[np.ndarray, np.ndarray]:
    """One photo through the backbone and the run's heads, mapped back to the photo's own size.

    Parameters
    ----------
    image : (native_y, native_x, rgb) uint8
    fov : (native_y, native_x) bool
    name : what an error about the photo calls it (its file, or "image")

    Returns
    -------
    probability : (native_y, native_x) float32, the members' mean vessel probability, 0 outside `fov`
    mask : (native_y, native_x) bool, the members' majority vote at their thresholds, inside `fov`
    """
    check_fundus_photo(image, fov, extractor.config.canvas_size, name)
    canvas = to_canvas(image, np.zeros_like(fov), fov, canvas_size=extractor.config.canvas_size,
                       fov_crop=extractor.config.fov_crop, fill=fill)
    features = extractor.feature_maps(canvas.image, canvas.fov)
    batch = {feature_array(name): maps[None] for name, maps in features.items()}
    batch["image"] = head_image(canvas.image, canvas.fov, extractor.config.to_dict())[None]
    batch["fov"] = canvas.fov[None]
    prob, votes = image_prediction(run, batch)
    probability = (canvas.geometry.to_native(prob) * fov).astype(np.float32)
    mask = canvas.geometry.to_native(votes) > 0.5
    mask &= fov
    return probability, mask


def _write_tif(path: Path, probability: np.ndarray) -> None:
    """A plain single-page float32 TIFF (atomic, so `skip_existing` never keeps half a file)."""
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, probability, photometric="minisblack")
    write_bytes_atomic(path, buffer.getvalue())


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with predicted vessels tinted green, so a reader sees what was found where."""
    tinted = image.astype(np.float32)
    tinted[mask] = 0.35 * tinted[mask] + 0.65 * VESSEL_TINT
    return tinted.astype(np.uint8)
