"""Tiny feature caches built straight with the store API, for the training and evaluation tests.

Each image has a vessel pattern of stripes on a 32 px canvas; its native image is the canvas region upsampled x2
(nearest), so mapping a canvas prediction back to native resolution is exact at the 0.5 threshold. Features are
float16 noise, and with `signal=True` channel 0 of every band LL carries the vessel mask (average-pooled to the
map size), so a head can learn it.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dgss.store import ArraySpec, Entry, FeatureStore
from dgss.store.geometry import Geometry

CANVAS = 32
TIMESTEPS = [1, 10]
BANDS = ["LL", "LH", "HL", "HH"]
CHANNELS = 3
BLOCKS = [("up_blocks.0", 8, "coarse"), ("up_blocks.1", 16, "middle"), ("up_blocks.2", 32, "fine")]
NATIVE_SHAPES = [(64, 48), (48, 64)]  # x2 of the canvas region, alternating portrait and landscape


def aggregate_config(digest: str = "test-model") -> dict:
    """An extraction config as `ExtractionConfig.to_dict()` writes it; another digest gives another key."""
    return {"model_digest": digest, "blocks": [name for name, _, _ in BLOCKS], "timesteps": TIMESTEPS,
            "mode": "anchored", "ensemble": 1, "seed": 0, "bands": "haar", "input_size": CANVAS,
            "canvas_size": CANVAS, "tile_overlap": 0, "fov_crop": True, "schema_version": 1}


def _arrays(max_native: tuple[int, int]) -> dict[str, ArraySpec]:
    arrays = {}
    for name, size, _ in BLOCKS:
        arrays[f"features/{name}"] = ArraySpec(
            shape=(len(TIMESTEPS), len(BANDS), CHANNELS, size // 2, size // 2), dtype="float16",
            dims=("timestep", "band", f"{name}.channel", f"{name}.y", f"{name}.x"))
    canvas = (CANVAS, CANVAS)
    arrays["image"] = ArraySpec(shape=(*canvas, 3), dtype="uint8", dims=("y", "x", "rgb"))
    arrays["vessel"] = ArraySpec(shape=canvas, dtype="bool", dims=("y", "x"))
    arrays["fov"] = ArraySpec(shape=canvas, dtype="bool", dims=("y", "x"))
    arrays["geometry"] = ArraySpec(shape=(11,), dtype="int64", dims=("geometry_field",))
    arrays["native_vessel"] = ArraySpec(shape=max_native, dtype="bool", dims=("native_y", "native_x"))
    arrays["native_fov"] = ArraySpec(shape=max_native, dtype="bool", dims=("native_y", "native_x"))
    return arrays


def _stripes(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Two or three horizontal and vertical bars, 2 px wide at even offsets (so halving keeps them)."""
    mask = np.zeros(shape, dtype=bool)
    for axis in (0, 1):
        for start in rng.choice(np.arange(0, shape[axis] - 2, 2), size=rng.integers(2, 4), replace=False):
            if axis == 0:
                mask[start:start + 2, :] = True
            else:
                mask[:, start:start + 2] = True
    return mask


def _pool(mask: np.ndarray, size: int) -> np.ndarray:
    factor = mask.shape[0] // size
    return mask.reshape(size, factor, size, factor).mean(axis=(1, 3))


def aggregate_image_arrays(index: int, max_native: tuple[int, int], *, signal: bool, seed: int) -> dict:
    """Every array of image `index`: canvas region + its x2 native copy, and features with or without signal."""
    rng = np.random.default_rng([seed, index])
    native_shape = NATIVE_SHAPES[index % len(NATIVE_SHAPES)]
    geometry = Geometry.fit(native_shape, (0, 0, *native_shape), CANVAS)
    region = _stripes(rng, (geometry.scaled_height, geometry.scaled_width))
    vessel = np.zeros((CANVAS, CANVAS), dtype=bool)
    fov = np.zeros((CANVAS, CANVAS), dtype=bool)
    box = np.s_[geometry.pad_top:geometry.pad_top + geometry.scaled_height,
                geometry.pad_left:geometry.pad_left + geometry.scaled_width]
    vessel[box], fov[box] = region, True
    native_vessel = np.zeros(max_native, dtype=bool)
    native_fov = np.zeros(max_native, dtype=bool)
    native_vessel[:native_shape[0], :native_shape[1]] = np.kron(region, np.ones((2, 2), dtype=bool))
    native_fov[:native_shape[0], :native_shape[1]] = True
    image = np.zeros((CANVAS, CANVAS, 3), dtype=np.uint8)
    image[box] = (180, 90, 40)
    image[vessel] = (90, 30, 20)
    arrays = {"image": image, "vessel": vessel, "fov": fov, "geometry": geometry.to_array(),
              "native_vessel": native_vessel, "native_fov": native_fov}
    for name, size, _ in BLOCKS:
        features = rng.normal(0, 0.5, (len(TIMESTEPS), len(BANDS), CHANNELS, size // 2, size // 2))
        if signal:
            features[:, 0, 0] += 2 * _pool(vessel, size // 2) - 1
        arrays[f"features/{name}"] = features.astype(np.float16)
    return arrays


def aggregate_build_cache(store_path: Path, dataset: str, *, n_images: int = 4, splits: list[str] | None = None,
                          signal: bool = True, digest: str = "test-model", done: list[int] | None = None,
                          seed: int = 0) -> Entry:
    """Write a tiny entry of `dataset` into the store at `store_path`; only the `done` indices (default all)."""
    store = FeatureStore(store_path)
    splits = splits or ["all"] * n_images
    max_native = tuple(max(shape[axis] for shape in NATIVE_SHAPES[:n_images]) for axis in (0, 1))
    entry = store.require_entry(
        dataset=dataset, config=aggregate_config(digest), image_ids=[f"{dataset}_{i:02d}" for i in range(n_images)],
        splits=splits, arrays=_arrays(max_native), coords={"timestep": TIMESTEPS, "band": BANDS},
        attrs={"blocks": [{"name": name, "channels": CHANNELS, "height": size, "width": size}
                          for name, size, _ in BLOCKS],
               "levels": {level: [name] for name, _, level in BLOCKS}, "model": "synthetic"})
    for index in range(n_images) if done is None else done:
        entry.write_image(index, aggregate_image_arrays(index, max_native, signal=signal, seed=seed))
    return entry


@pytest.fixture
def aggregate_cache(tmp_path: Path) -> Callable[..., Entry]:
    """Factory: `aggregate_cache(dataset, **options)` writes an entry into `tmp_path / "store"`."""
    def build(dataset: str, **options) -> Entry:
        return aggregate_build_cache(tmp_path / "store", dataset, **options)
    return build


@pytest.fixture
def aggregate_store(tmp_path: Path, aggregate_cache) -> Path:
    """A store with SRC (4 images: 3 training, 1 test) and TGT (2 images, no split), both learnable."""
    aggregate_cache("SRC", n_images=4, splits=["training", "training", "training", "test"])
    aggregate_cache("TGT", n_images=2, seed=1)
    return tmp_path / "store"


@pytest.fixture(scope="session")
def aggregate_trained(tmp_path_factory) -> tuple[Path, Path]:
    """(store, run): the `aggregate_store` layout, and a small MLP run trained on SRC (shared by many tests)."""
    from dgss.aggregate.training import HeadTrainingConfig, fit_head

    root = tmp_path_factory.mktemp("aggregate_trained")
    aggregate_build_cache(root / "store", "SRC", n_images=4, splits=["training", "training", "training", "test"])
    aggregate_build_cache(root / "store", "TGT", n_images=2, seed=1)
    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [16]}, epochs=8, lr=1e-2, ensemble=2,
                                validation_fraction=0.0)
    return root / "store", fit_head(root / "store", ["SRC"], root / "run", config)
