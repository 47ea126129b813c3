"""Score a run on unseen target datasets at each image's native resolution, from the cache alone.

Per target: the done images with a vessel label of its "test" split (all images where it has none), cached under
the run's key; extracted images without a label are counted in the report and a warning, never scored.
Each image's canvas prediction is mapped back to native resolution with its stored geometry and scored against
`native_vessel` inside `native_fov`. Thresholded metrics (Dice, IoU, sensitivity, specificity, accuracy) score
the members' per-pixel majority vote, each member thresholded at the threshold its source validation chose (or
one given); AUC-ROC and AUC-PR rank the mean probability (with one member, the same map). The vote fraction is
mapped to native resolution and thresholded there (> 0.5).

Each target's report has its own folder under the report folder (named by `safe_file_name`), so scoring another
target beside it never replaces its scores, and scoring it again is refused unless asked to replace it.
"""

import hashlib
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dgss.aggregate.data import CachedImages, split_indices, unlabelled_count, warn_pending
from dgss.aggregate.inference import image_prediction
from dgss.aggregate.metrics import METRIC_NAMES, MetricAccumulator, vessel_metrics
from dgss.aggregate.settings import InferenceSettings
from dgss.aggregate.report import draw_table, format_table, overlay_panel, write_csv, write_json
from dgss.aggregate.run import DEFAULT_TILE, DEFAULT_TILE_CONTEXT, Run, load_run, run_store
from dgss.aggregate.selection import is_part_of
from dgss.aggregate.spec import CacheSpec
from dgss.datasets import canonical_name
from dgss.errors import ConfigMismatchError, DgssError, StoreError
from dgss.extract.dataset_files import check_unchanged
from dgss.extract.hints import extract_command
from dgss.plotting import write_png
from dgss.progress import LOGGER, Progress, log_file
from dgss.store import Entry, FeatureStore
from dgss.store.geometry import Geometry

TARGET_SPLIT = "test"
RANKING_METRICS = ("auc_roc", "auc_pr")
TABLE_COLUMNS = ("target", "image", "n_images", *METRIC_NAMES)
REPORT_FILES = ("scores.csv", "scores.json", "scores.png", "log.txt")
OVERLAY_FOLDER = "overlays"
_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_FILE_NAME = 80


def safe_file_name(name: str) -> str:
    """`name` as one file name on any file system (a dataset `folder:/data/mini` keeps no slash or colon).

    Runs of other characters become "_"; a name that had to change gets a digest of the original, so two names
    never share a file (`folder:/a/mini` and `folder:/b/mini`).
    """
    plain = _UNSAFE_IN_FILE_NAMES.sub("_", name).strip("._")[:MAX_FILE_NAME]
    if plain == name:
        return name
    return f"{plain}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def evaluate_run(run_dir: str | Path, store_path: str | Path | None, targets: Sequence[str],
                 report_dir: str | Path, *, device: str = "cpu", overlays: int = 3, tile: int | None = DEFAULT_TILE,
                 tile_context: int = DEFAULT_TILE_CONTEXT, allow_training_images: bool = False,
                 threshold: float | str | None = None, overwrite: bool = False,
                 flips: bool | None = InferenceSettings.tta.default
                 ) -> dict[str, Any]:
    """Score the run on every target; write each target's scores (CSV, JSON, PNG table) and overlays in its folder
    `report_dir/<target>/` (`target_report_dir`); a target whose folder holds a report is refused unless `overwrite`.

    `store_path` None means the store the run was trained from. The heads are applied in tiles of `tile` canvas
    pixels (None: whole canvases). A target image the run was trained on is refused, naming it, unless
    `allow_training_images` (then the report marks the target). `threshold` replaces the members' stored
    decision thresholds (a probability, or "otsu": one per image that reads no label). `flips` averages each head's probabilities over the
    eight flips and rotations of every canvas (test-time augmentation; None: as the run was trained, `--flips`). Returns the scores per target, pooled and per image (`n_images` scored: those with a
    vessel label; `unlabelled_images`: extracted ones left out), and the paths written per target.
    """
    if not targets:
        raise StoreError("no target dataset given: name one or more with --target, e.g. --target CHASE_DB1,HRF")
    run = load_run(run_dir, device=device, tile=tile, tile_context=tile_context, threshold=threshold, flips=flips)
    store_path = str(store_path if store_path is not None else run_store(run.record, run.path))  # a URL stays one
    store = FeatureStore(store_path, create=False)
    entries = [resolve_target(store, target, run) for target in dict.fromkeys(map(canonical_name, targets))]
    plans = [(entry, *split_indices(entry, TARGET_SPLIT)) for entry in entries]  # every check before any work
    seen = {entry.dataset: trained_images(run, entry, indices) for entry, _, indices in plans}
    if not allow_training_images:
        check_unseen(run, seen)
    folders = {entry.dataset: target_report_dir(report_dir, entry.dataset) for entry in entries}
    for folder in folders.values():
        clear_report(folder, overwrite)
    for entry, split, _ in plans:
        warn_pending(entry, split, "scoring")
    header = {"run": str(Path(run_dir)), "store": str(store_path), "key": run.key,
              "thresholds": "otsu, per image" if run.per_image_threshold else list(run.thresholds)}
    results: dict[str, Any] = {**header, "targets": {}, "files": {}}
    for entry, split, indices in plans:
        folder = folders[entry.dataset]
        (folder / OVERLAY_FOLDER).mkdir(parents=True, exist_ok=True)
        with log_file(folder):
            LOGGER.info("evaluate: run %s (key %s) on %s, %d images of split '%s'", run_dir, run.key, entry.dataset,
                        len(indices), split)
            scores, paths = _score_target(run, entry, indices, folder / OVERLAY_FOLDER, overlays)
            target = {entry.dataset: {"split": split, "training_images": len(seen[entry.dataset]),
                                      "unlabelled_images": unlabelled_count(entry, split), **scores}}
            results["targets"].update(target)
            files = _write_scores(folder, {**header, "targets": target}, run_dir, run.key)
            results["files"][entry.dataset] = {**files, "overlays": [str(path) for path in paths]}
            LOGGER.info("evaluate: %s pooled Dice %.4f, AUC-ROC %.4f; report in %s", entry.dataset,
                        scores["pooled"]["dice"], scores["pooled"]["auc_roc"], folder)
    return results


def target_report_dir(report_dir: str | Path, dataset: str) -> Path:
    """The folder of one target's report: its name made safe for a file system (`folder:/data/mini` included)."""
    return Path(report_dir) / safe_file_name(dataset)


def clear_report(folder: Path, overwrite: bool) -> None:
    """Refuse a folder that holds a report unless `overwrite`; then remove the old report's files, overlays included,
    so nothing stale is left beside the new scores."""
    existing = [name for name in REPORT_FILES if (folder / name).exists()]
    if (folder / OVERLAY_FOLDER).is_dir():
        existing.append(OVERLAY_FOLDER)
    if not existing:
        return
    if not overwrite:
        raise DgssError(f"{folder} already holds a report ({', '.join(existing)}): pass --overwrite to replace it, "
                        "or write to another --report folder")
    for name in REPORT_FILES:
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / OVERLAY_FOLDER, ignore_errors=True)


def _write_scores(folder: Path, results: dict[str, Any], run_dir: str | Path, key: str) -> dict[str, str]:
    rows = score_rows(results)
    paths = {kind: folder / f"scores.{kind}" for kind in ("csv", "json", "png")}
    write_csv(paths["csv"], rows, TABLE_COLUMNS)
    write_json(paths["json"], results)
    write_png(paths["png"], draw_table(rows, TABLE_COLUMNS, title=f"{run_dir} (key {key})"))
    return {kind: str(path) for kind, path in paths.items()}


def trained_images(run: Run, entry: Entry, indices: list[int]) -> list[str]:
    """Ids of the target's images (at `indices`) that the run was trained or validated on."""
    trained = run.record.seen_images(entry.dataset)
    return [entry.image_ids[index] for index in indices if entry.image_ids[index] in trained]


def check_unseen(run: Run, seen: dict[str, list[str]]) -> None:
    """Refuse to score a target on images the run learned from: that is not a domain-generalization score."""
    for dataset, ids in seen.items():
        if ids:
            shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
            raise ConfigMismatchError(
                f"run {run.path} was trained on {len(ids)} image(s) of {dataset} that would be scored ({shown}): "
                f"score another target, or pass --allow-training-images to score them anyway (marked in the report)")


def resolve_target(store: FeatureStore, target: str, run: Run) -> Entry:
    """The target's entry under the run's key; an error naming both keys when it is cached under another."""
    try:
        entry = store.entry(target, run.key)
    except StoreError:
        others = [info.key for info in store.entries() if info.dataset == target]
        command = extract_command(target, store.location, run.record.extraction_config, run.record.backbone)
        if not others:
            raise StoreError(f"no features for {target} in {store.location} under the key of run {run.path} "
                             f"({run.key}): `{command}` would add it") from None
        raise ConfigMismatchError(
            f"{target} is cached in {store.location} under key {', '.join(others)}, but run {run.path} was "
            f"trained on key {run.key}: extract {target} with the run's extraction config: `{command}`"
        ) from None
    check_unchanged(entry, store.location)
    if not is_part_of(run.spec, CacheSpec.from_entry_attrs(entry.config, entry.attrs)):
        raise ConfigMismatchError(f"{target} (key {entry.key}) has other blocks or sizes than run {run.path} "
                                  "expects: re-extract it with this dgss version")
    return entry


def predict_native(run: Run, entry: Entry, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One cached image's prediction at canvas size and its mapping back to native resolution.

    Returns
    -------
    votes : (canvas_y, canvas_x) float32, fraction of members calling each pixel a vessel
    prob_native : (native_y, native_x) float32, mean vessel probability
    votes_native : (native_y, native_x) float32, `votes` mapped to native resolution
    """
    item = CachedImages([(entry, index)], features=run.heads[0].uses_features)[0]
    prob, votes = image_prediction(run, {name: value[None] for name, value in item.items()})
    geometry = Geometry.from_array(entry.read("geometry", index))
    return votes, geometry.to_native(prob).astype(np.float32), geometry.to_native(votes).astype(np.float32)


def native_truth(entry: Entry, index: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`native_vessel` and `native_fov` of one image, cropped from the padded store arrays to its true `shape`."""
    height, width = shape
    vessel = entry.read("native_vessel", index)[:height, :width]
    fov = entry.read("native_fov", index)[:height, :width]
    return vessel.astype(bool), fov.astype(bool)


def combined_metrics(prob: np.ndarray, mask: np.ndarray, truth: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """Thresholded metrics of `mask` and ranking metrics of `prob`, inside `fov`.

    Parameters
    ----------
    prob : (y, x) float in [0, 1]
    mask : (y, x) float, 1 for vessel and 0 for background
    truth, fov : (y, x) bool
    """
    return _merge(vessel_metrics(prob, truth, fov), vessel_metrics(mask, truth, fov))


def _merge(ranked: dict[str, float], voted: dict[str, float]) -> dict[str, float]:
    return {name: float(ranked[name] if name in RANKING_METRICS else voted[name]) for name in METRIC_NAMES}


def _score_target(run: Run, entry: Entry, indices: list[int], overlay_dir: Path,
                  overlays: int) -> tuple[dict[str, Any], list[Path]]:
    images, paths = {}, []
    ranked, voted = MetricAccumulator(), MetricAccumulator()
    with Progress(len(indices), f"evaluate {entry.dataset}", "images") as progress:
        for number, index in enumerate(indices):
            votes, prob_native, votes_native = predict_native(run, entry, index)
            truth, fov = native_truth(entry, index, prob_native.shape)
            mask = (votes_native > 0.5).astype(np.float32)
            scores = images[entry.image_ids[index]] = combined_metrics(prob_native, mask, truth, fov)
            ranked.update(prob_native, truth, fov)
            voted.update(mask, truth, fov)
            if number < overlays:
                paths.append(_write_overlay(entry, index, votes > 0.5, overlay_dir))
            progress.step(image=entry.image_ids[index], dice=f"{scores['dice']:.4f}")
    return {"n_images": len(indices), "pooled": _merge(ranked.compute(), voted.compute()), "images": images}, paths


def _write_overlay(entry: Entry, index: int, prediction: np.ndarray, overlay_dir: Path) -> Path:
    image_id = entry.image_ids[index]
    panel = overlay_panel(entry.read("image", index), entry.read("vessel", index).astype(bool), prediction,
                          entry.read("fov", index).astype(bool), title=f"{entry.dataset} {image_id}")
    path = overlay_dir / f"{safe_file_name(image_id)}.png"
    write_png(path, panel)
    return path


def score_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows: per target its pooled scores, the mean of its per-image scores, then one row per image."""
    rows = []
    for target, scores in results["targets"].items():
        rows.append({"target": target, "image": "pooled", "n_images": scores["n_images"], **scores["pooled"]})
        rows.append({"target": target, "image": "mean", "n_images": len(scores["images"]),
                     **per_image_mean(scores["images"])})
        rows += [{"target": target, "image": image_id, "n_images": 1, **values}
                 for image_id, values in scores["images"].items()]
    return rows


def per_image_mean(images: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each metric averaged over images, as papers report it beside the pooled score (pooling weighs large images
    more); an image where a metric is undefined (NaN, e.g. AUC without vessels) is left out of that metric's mean."""
    values = np.array([[scores[name] for name in METRIC_NAMES] for scores in images.values()], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric NaN on every image stays NaN, quietly
        means = np.nanmean(values.reshape(-1, len(METRIC_NAMES)), axis=0)
    return {name: float(mean) for name, mean in zip(METRIC_NAMES, means)}


def pooled_table(results: dict[str, Any]) -> str:
    """The pooled and per-image mean rows of every target as plain text, for the terminal."""
    rows = [row for row in score_rows(results) if row["image"] in ("pooled", "mean")]
    return format_table(rows, TABLE_COLUMNS)
