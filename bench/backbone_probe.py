"""Linear probe of per-pixel feature quality across datasets (run by hand, not a test).

    python bench/backbone_probe.py --model PATH [--canvas 512] [--timesteps 10,50,100,250]
        [--pixels-per-image 20000] [--data-root /work/shared/datasets] [--limit N] [--threads 1]
        [--blocks mid_block,up_blocks.1] [--input-size N] [--tile-overlap 0] [--out bench/results/backbone_probe.csv]
        [--sources backbone,random,pixels,filters]

A linear probe asks what a feature source carries about vessels before any head is trained on it: a logistic
regression can only read what is linearly there, so a backbone that does not beat the baselines here is unlikely to
help a head. Four sources are probed, each per canvas pixel:

- ``backbone``: dgss's anchored features (bands "none") of the chosen blocks x timesteps, upsampled bilinearly to
  the canvas;
- ``random``: the same UNet architecture with random weights (seed 0), so the gain of training can be read off;
- ``pixels``: the 9x9 window of the green channel, z-scored inside the FOV;
- ``filters``: 16 Gaussian scale-space filters of that green channel (smoothing, gradient magnitude and the two
  Hessian eigenvalues at sigma 1, 2, 4, 8), the classical vesselness ingredients.

Each probe is fitted on a class-balanced sample of FOV pixels from the DRIVE training images only (features
standardised); its threshold maximises the pooled Dice on those images' FOV pixels and is then fixed. Pooled Dice and
AUC-ROC inside the FOV are reported on DRIVE test (same domain) and CHASE_DB1 (unseen domain), at canvas resolution.
The markdown table goes to stdout, the same rows to ``--out`` (CSV), where they replace the rows of the same source
and settings (model included) and keep the others: probing a second backbone with ``--sources backbone`` puts its
row beside the first's.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DModel
from scipy import ndimage
from scipy.special import expit
from skimage.feature import hessian_matrix, hessian_matrix_eigvals
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from dgss.aggregate.metrics import MetricAccumulator
from dgss.backbone.appearance import save_appearance
from dgss.backbone.loading import Backbone, load_backbone
from dgss.datasets import get_dataset, source_ids, target_ids
from dgss.extract.extractor import FeatureExtractor, make_config
from dgss.extract.preprocess import CanvasImage, to_canvas

FILTER_SIGMAS = (1.0, 2.0, 4.0, 8.0)
WINDOW = 9
MAX_ITER = 500
SOURCES = ("backbone", "random", "pixels", "filters")


@dataclass(frozen=True)
class PixelSample:
    """Sampled FOV pixels of one canvas image.

    ``weights`` scale each sampled pixel back to the number of FOV pixels of its class in the image, so that sums
    over the balanced sample estimate sums over all FOV pixels (used to pick the Dice threshold).
    """

    rows: np.ndarray  # (pixel,) int64
    cols: np.ndarray  # (pixel,) int64
    labels: np.ndarray  # (pixel,) bool
    weights: np.ndarray  # (pixel,) float64


@dataclass(frozen=True)
class Probe:
    """A fitted logistic regression on raw (unstandardised) features: logit = features @ coef + intercept."""

    coef: np.ndarray  # (feature,) float64
    intercept: float
    threshold: float  # on the probability
    iterations: int


@dataclass(frozen=True)
class ProbeResult:
    """One row of the table."""

    name: str
    features: int
    threshold: float
    scores: dict[str, dict[str, float]]  # target -> metric -> value
    fit_s: float
    score_s: float


class FeatureSource(ABC):
    """Per-pixel features of a canvas image, read at sampled pixels (training) or as a logit map (scoring)."""

    name: str

    @abstractmethod
    def features_at(self, canvas: CanvasImage, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(pixel, feature) float32 features at the given canvas pixels."""

    @abstractmethod
    def logit_map(self, canvas: CanvasImage, probe: Probe) -> np.ndarray:
        """(y, x) float32 probe logits over the whole canvas."""


class DiffusionSource(FeatureSource):
    """Block maps of a backbone, bilinearly upsampled to the canvas, all blocks x timesteps concatenated.

    The full-resolution feature stack is never built: training reads the maps at the sampled pixels only
    (``grid_sample``), and because bilinear upsampling is linear and its weights sum to one, the probe's logit map is
    the upsampled per-block projection of the low-resolution maps onto the probe weights, plus the intercept.
    """

    def __init__(self, name: str, extractor: FeatureExtractor) -> None:
        self.name = name
        self.extractor = extractor

    def _maps(self, canvas: CanvasImage) -> list[torch.Tensor]:
        """Per block, (timestep x channel, map_y, map_x) float32, in the extractor's block order."""
        maps = self.extractor.feature_maps(canvas.image, canvas.fov)
        return [torch.from_numpy(block).float().flatten(0, 2) for block in maps.values()]

    def features_at(self, canvas: CanvasImage, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        size = canvas.image.shape[0]
        # Pixel centres in grid_sample's [-1, 1] frame (align_corners=False), as F.interpolate(bilinear) samples.
        grid = torch.from_numpy(np.stack([(cols + 0.5) / size, (rows + 0.5) / size], axis=-1) * 2 - 1).float()
        sampled = [
            F.grid_sample(block[None], grid[None, None], mode="bilinear", padding_mode="border", align_corners=False)
            for block in self._maps(canvas)
        ]
        return torch.cat([values[0, :, 0].T for values in sampled], dim=1).numpy()

    def logit_map(self, canvas: CanvasImage, probe: Probe) -> np.ndarray:
        size = canvas.image.shape[:2]
        coef = torch.from_numpy(probe.coef).float()
        total = torch.full(size, probe.intercept)
        start = 0
        for block in self._maps(canvas):
            projected = torch.einsum("khw,k->hw", block, coef[start : start + block.shape[0]])
            total += F.interpolate(projected[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
            start += block.shape[0]
        return total.numpy()


class FilterSource(FeatureSource):
    """Classical features computed as a full (y, x, feature) stack on the z-scored green channel."""

    def __init__(self, name: str, stack: Callable[[CanvasImage], np.ndarray]) -> None:
        self.name = name
        self.stack = stack

    def features_at(self, canvas: CanvasImage, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self.stack(canvas)[rows, cols]

    def logit_map(self, canvas: CanvasImage, probe: Probe) -> np.ndarray:
        return (self.stack(canvas) @ probe.coef.astype(np.float32)) + np.float32(probe.intercept)


def zscored_green(canvas: CanvasImage) -> np.ndarray:
    """(y, x) float32 green channel z-scored inside the FOV and 0 (the FOV mean) outside it.

    Filling the outside with the mean keeps the dark border from dominating every filter near the FOV edge.
    """
    green = canvas.image[..., 1].astype(np.float64)
    inside = green[canvas.fov]
    scored = (green - inside.mean()) / max(inside.std(), 1e-6)
    scored[~canvas.fov] = 0
    return scored.astype(np.float32)


def pixel_windows(canvas: CanvasImage) -> np.ndarray:
    """(y, x, WINDOW**2) float32: each pixel's WINDOW x WINDOW neighbourhood of the z-scored green channel."""
    half = WINDOW // 2
    padded = np.pad(zscored_green(canvas), half)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (WINDOW, WINDOW))
    return windows.reshape(*windows.shape[:2], WINDOW * WINDOW)


def filter_bank(canvas: CanvasImage) -> np.ndarray:
    """(y, x, 16) float32: per sigma, Gaussian smoothing, gradient magnitude and the two Hessian eigenvalues."""
    green = zscored_green(canvas)
    maps = []
    for sigma in FILTER_SIGMAS:
        maps.append(ndimage.gaussian_filter(green, sigma))
        maps.append(ndimage.gaussian_gradient_magnitude(green, sigma))
        hessian = hessian_matrix(green, sigma=sigma, order="rc", use_gaussian_derivatives=False)
        maps.extend(hessian_matrix_eigvals(hessian))
    return np.stack(maps, axis=-1).astype(np.float32)


def sample_pixels(canvas: CanvasImage, count: int, rng: np.random.Generator) -> PixelSample:
    """As many vessel as background pixels inside the FOV (up to ``count // 2`` each), without replacement."""
    candidates = {label: np.flatnonzero(canvas.fov & (canvas.vessel == label)) for label in (True, False)}
    take = min(count // 2, *(found.size for found in candidates.values()))
    parts = []
    for label, found in candidates.items():
        chosen = rng.choice(found, size=take, replace=False)
        parts.append((chosen, np.full(take, label), np.full(take, found.size / max(take, 1))))
    flat = np.concatenate([part[0] for part in parts])
    rows, cols = np.unravel_index(flat, canvas.fov.shape)
    return PixelSample(
        rows=rows,
        cols=cols,
        labels=np.concatenate([part[1] for part in parts]),
        weights=np.concatenate([part[2] for part in parts]),
    )


def dice_threshold(prob: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """The probability threshold (``prob >= t`` is vessel) maximising the weighted pooled Dice of the pixels."""
    order = np.argsort(prob, kind="stable")[::-1]
    prob, labels, weights = prob[order], labels[order], weights[order]
    true_pos = np.cumsum(weights * labels)
    false_pos = np.cumsum(weights * ~labels)
    dice = 2 * true_pos / (true_pos + false_pos + true_pos[-1])
    last_of_tie = np.r_[np.flatnonzero(np.diff(prob)), prob.size - 1]
    return float(prob[last_of_tie[np.argmax(dice[last_of_tie])]])


def standardise_inplace(matrix: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Z-score the columns of (pixel, feature) ``matrix`` in place, in row chunks so no full-size temporary is made.

    Returns the (feature,) float64 mean and standard deviation (1 for constant columns) that were removed.
    """
    mean = matrix.sum(axis=0, dtype=np.float64) / matrix.shape[0]
    squares = np.zeros(matrix.shape[1])
    for start in range(0, matrix.shape[0], chunk):
        block = matrix[start : start + chunk]
        block -= mean.astype(np.float32)
        squares += np.einsum("ij,ij->j", block, block, dtype=np.float64)
    std = np.sqrt(squares / matrix.shape[0])
    std[std == 0] = 1.0
    matrix /= std.astype(np.float32)
    return mean, std


def fit_probe(
    source: FeatureSource, canvases: list[CanvasImage], pixels_per_image: int, seed: int
) -> tuple[Probe, int]:
    """Fit the logistic regression on balanced FOV pixels of ``canvases``; returns it and the feature count.

    The feature matrix is filled in place and standardised in place, so memory stays at one float32 matrix.
    """
    rng = np.random.default_rng(seed)
    samples = [sample_pixels(canvas, pixels_per_image, rng) for canvas in canvases]
    offsets = np.cumsum([0] + [sample.labels.size for sample in samples])
    matrix = None
    for canvas, sample, start in tqdm(
        list(zip(canvases, samples, offsets[:-1])), desc=f"{source.name}: features", disable=None
    ):
        values = source.features_at(canvas, sample.rows, sample.cols)
        if matrix is None:
            matrix = np.empty((offsets[-1], values.shape[1]), dtype=np.float32)
        matrix[start : start + values.shape[0]] = values
    labels = np.concatenate([sample.labels for sample in samples])
    weights = np.concatenate([sample.weights for sample in samples])
    mean, std = standardise_inplace(matrix)
    with warnings.catch_warnings():
        # A capped fit is reported in the summary line (iterations == MAX_ITER) instead of a multi-line warning.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(max_iter=MAX_ITER).fit(matrix, labels)
    coef, intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
    threshold = dice_threshold(expit(matrix @ coef.astype(np.float32) + intercept), labels, weights)
    probe = Probe(
        coef=coef / std,
        intercept=intercept - float(np.sum(coef * mean / std)),
        threshold=threshold,
        iterations=int(model.n_iter_[0]),
    )
    return probe, matrix.shape[1]


def score_probe(source: FeatureSource, probe: Probe, canvases: list[CanvasImage]) -> dict[str, float]:
    """Pooled metrics inside the FOV over ``canvases``, one image at a time (memory does not grow with images)."""
    accumulator = MetricAccumulator(threshold=probe.threshold)
    for canvas in canvases:
        prob = expit(source.logit_map(canvas, probe).astype(np.float64))
        accumulator.update(prob, canvas.vessel, canvas.fov)
    return accumulator.compute()


def load_canvases(name: str, ids: list[str], data_root: str, canvas_size: int) -> list[CanvasImage]:
    """Every listed image of a dataset on the canvas (FOV crop, aspect kept), held in memory for all probes."""
    reader = get_dataset(name, data_root)
    canvases = []
    for image_id in tqdm(ids, desc=f"read {name}", disable=None):
        sample = reader.read(image_id)
        canvases.append(to_canvas(sample.image, sample.vessel, sample.fov, canvas_size=canvas_size))
    return canvases


def random_twin(backbone: Backbone, folder: Path) -> Path:
    """The backbone's UNet architecture with fresh random weights (seed 0), its schedule and its appearance target
    (so both see identically matched images), saved to ``folder``."""
    torch.manual_seed(0)
    UNet2DModel.from_config(backbone.network.config).save_pretrained(folder)
    DDIMScheduler.from_config(backbone.scheduler_config).save_config(folder)
    if backbone.appearance is not None:
        save_appearance(folder, backbone.appearance)
    return folder


def diffusion_extractor(backbone: Backbone, args: argparse.Namespace, blocks: list[str] | None) -> FeatureExtractor:
    """dgss's extractor for the probe: anchored, raw maps (bands "none"), the probe's canvas and timesteps.

    The model input defaults to its sample size, capped at the canvas (the UNet is fully convolutional); a larger
    canvas is covered by input-size tiles, as ``dgss extract`` does.
    """
    input_size = args.input_size or min(backbone.sample_size or args.canvas, args.canvas)
    config = make_config(
        backbone,
        blocks=blocks,
        timesteps=args.timesteps,
        bands="none",
        input_size=input_size,
        canvas_size=args.canvas,
        tile_overlap=args.tile_overlap,
    )
    return FeatureExtractor(backbone, config)


def run_probe(
    source: FeatureSource, train: list[CanvasImage], targets: dict[str, list[CanvasImage]], args: argparse.Namespace
) -> ProbeResult:
    """Fit one source's probe on DRIVE training pixels and score it on every target, timing both parts."""
    start = time.perf_counter()
    probe, count = fit_probe(source, train, args.pixels_per_image, args.seed)
    fitted = time.perf_counter()
    scores = {name: score_probe(source, probe, canvases) for name, canvases in targets.items()}
    scored = time.perf_counter()
    capped = " (the cap: not converged)" if probe.iterations >= MAX_ITER else ""
    print(
        f"{source.name}: {count} features, {probe.iterations} LBFGS iterations{capped}, "
        f"threshold {probe.threshold:.3f}, "
        f"fit {fitted - start:.1f} s, score {scored - fitted:.1f} s",
        flush=True,
    )
    return ProbeResult(
        name=source.name,
        features=count,
        threshold=probe.threshold,
        scores=scores,
        fit_s=fitted - start,
        score_s=scored - fitted,
    )


def markdown_table(results: list[ProbeResult], targets: list[str]) -> str:
    """The results as a markdown table: Dice / AUC-ROC per target, then feature count and timings."""
    header = ["features", *(f"{target} Dice / AUC" for target in targets), "n", "fit s", "score s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        cells = [result.name]
        cells += [f"{result.scores[t]['dice']:.3f} / {result.scores[t]['auc_roc']:.3f}" for t in targets]
        cells += [str(result.features), f"{result.fit_s:.1f}", f"{result.score_s:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: Path, results: list[ProbeResult], targets: list[str], args: argparse.Namespace) -> None:
    """One row per source, with the run's settings so that a row can be reproduced on its own; rows of other sources
    or models already in `path` are kept, so backbones probed in separate runs sit side by side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "model": args.model,
        "canvas": args.canvas,
        "timesteps": " ".join(map(str, args.timesteps)),
        "pixels_per_image": args.pixels_per_image,
        "limit": args.limit or "",
    }
    metric_columns = [f"{target.replace(' ', '_')}_{metric}" for target in targets for metric in ("dice", "auc_roc")]
    columns = ["features", "n_features", "threshold", *metric_columns, "fit_s", "score_s", *settings]
    rows = []
    for result in results:
        metrics = [f"{result.scores[t][m]:.4f}" for t in targets for m in ("dice", "auc_roc")]
        timings = [f"{result.fit_s:.1f}", f"{result.score_s:.1f}"]
        rows.append(dict(zip(columns, [result.name, str(result.features), f"{result.threshold:.4f}", *metrics,
                                       *timings, *map(str, settings.values())])))
    identity = ["features", *settings]  # a row of other settings is another measurement: kept beside
    fresh = {tuple(row[name] for name in identity) for row in rows}
    old = list(csv.DictReader(path.open())) if path.is_file() else []
    kept = [row for row in old if tuple(row.get(name, "") for name in identity) not in fresh]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept + rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="diffusers UNet2DModel folder (as for dgss extract)")
    parser.add_argument("--canvas", type=int, default=512, help="canvas side in pixels; scores are at this size")
    parser.add_argument("--timesteps", type=lambda text: [int(step) for step in text.split(",")],
                        default=[10, 50, 100, 250])
    parser.add_argument("--blocks", type=lambda text: text.split(","), default=None,
                        help="comma-separated blocks; default: dgss's default blocks (one per level)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="model input side; default: the model's sample size, at most the canvas")
    parser.add_argument("--tile-overlap", type=int, default=0, help="tile overlap in pixels when the canvas is tiled")
    parser.add_argument("--pixels-per-image", type=int, default=20000, help="training pixels per DRIVE image")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets"),
                        help="folder holding DRIVE/ and CHASE_DB1/ (default: ../shared/datasets beside the checkout)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each set (checks)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pixel sample")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench/results/backbone_probe.csv"))
    parser.add_argument("--sources", type=lambda text: text.split(","), default=list(SOURCES),
                        help=f"comma-separated sources to probe (default: {','.join(SOURCES)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sources) - set(SOURCES))
    if unknown:
        parser.error(f"unknown --sources {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    drive, chase = get_dataset("DRIVE", args.data_root), get_dataset("CHASE_DB1", args.data_root)
    sets = {
        "train": ("DRIVE", source_ids(drive)),
        "DRIVE test": ("DRIVE", target_ids(drive)),
        "CHASE_DB1": ("CHASE_DB1", target_ids(chase)),
    }
    canvases = {key: load_canvases(name, ids[: args.limit], args.data_root, args.canvas) for key, (name, ids) in
                sets.items()}
    train = canvases.pop("train")
    print(f"read and placed {sum(map(len, canvases.values())) + len(train)} images on a {args.canvas} px canvas "
          f"in {time.perf_counter() - started:.1f} s", flush=True)

    backbone = load_backbone(args.model, args.device)
    extractor = diffusion_extractor(backbone, args, args.blocks)
    config = extractor.config
    print(f"backbone {args.model}: blocks {', '.join(config.blocks)}, timesteps {list(config.timesteps)}, "
          f"input {config.input_size} px, canvas {config.canvas_size} px", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as scratch, threadpool_limits(args.threads):
        builders = {
            "backbone": lambda: DiffusionSource("backbone", extractor),
            "random": lambda: DiffusionSource("random", diffusion_extractor(
                load_backbone(random_twin(backbone, Path(scratch)), args.device), args, list(config.blocks))),
            "pixels": lambda: FilterSource(f"pixels (green {WINDOW}x{WINDOW})", pixel_windows),
            "filters": lambda: FilterSource(f"filters ({4 * len(FILTER_SIGMAS)} Gaussian/Hessian)", filter_bank),
        }
        sources = [builders[name]() for name in args.sources]
        for source in sources:
            results.append(run_probe(source, train, canvases, args))

    targets = list(canvases)
    print()
    print(f"Linear probe, trained on {len(train)} DRIVE training images ({args.pixels_per_image} px each), "
          f"canvas {args.canvas} px, pooled inside the FOV:")
    print(markdown_table(results, targets))
    write_csv(args.out, results, targets, args)
    print(f"\nwritten to {args.out}; total wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
