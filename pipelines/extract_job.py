"""`dgss extract` as a Python function: one dataset through one backbone into one store entry, resumably.

The driver builds the config, creates the entry and lists the images not yet done; each image is then one task
(in this process or on a Dask worker) that reads the image, runs the extractor and writes that image's chunks,
marker last. A killed run leaves finished images marked done and resumes with the rest. Runs on one store at once
share the work: each image is claimed before it is computed, and an image another live run holds is left to it.
A new entry (or store) is created only once the driver has computed its first image, so a dataset refused at its
first file leaves nothing behind (two runs that start a new entry together may both compute that one image).
A subset (`split`, `images`, `labelled_only`, `limit`) computes only the selected images; the entry still lists the whole dataset,
so its key is the same and a later run fills in the rest.

Images without a vessel label are extracted like the others and marked so in the store (training and evaluation
leave them out); an image whose label was added or removed since it was extracted is computed again.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dgss.errors import DatasetError
from dgss.extract.settings import ExtractionSettings
from dgss.pipelines.parallel import map_tasks
from dgss.settings import check_settings

if TYPE_CHECKING:  # the readers import numpy and PIL: the driver imports them when it runs
    import numpy as np

    from dgss.datasets.reader import DatasetReader
    from dgss.extract.extractor import FeatureExtractor
    from dgss.store import Entry, FeatureStore

logger = logging.getLogger("dgss")


@dataclass(frozen=True, kw_only=True)
class ExtractionRequest:
    """Everything a user chooses for one extraction run (the CLI's options)."""

    dataset: str
    store: str | Path  # a directory or an fsspec URL (s3://bucket/cache.zarr)
    model: str = ""  # a diffusers UNet2DModel folder or hub id; "": the shipped backbone, as the CLI's default
    data_root: Path | None = None
    blocks: tuple[str, ...] | None = None
    timesteps: tuple[int, ...] | None = None
    mode: str = ExtractionSettings.mode.default
    draws: int = ExtractionSettings.draws.default
    seed: int = ExtractionSettings.seed.default
    inversion_steps: int | None = ExtractionSettings.inversion_steps.default
    bands: str = ExtractionSettings.bands.default
    input_size: int | None = ExtractionSettings.input_size.default
    canvas_size: int | None = ExtractionSettings.canvas_size.default
    tile_overlap: int = ExtractionSettings.tile_overlap.default
    mantissa_bits: int = ExtractionSettings.mantissa_bits.default
    canvas_field_deg: float | None = ExtractionSettings.canvas_field_deg.default
    outside_fov: str = ExtractionSettings.outside_fov.default
    appearance: str = "pool"  # the backbone's pool target, "none", or a dgss_appearance.json (`chosen_appearance`)
    device: str = "cpu"
    workers: int = 0
    threads_per_worker: int = 1
    scheduler: str | None = None
    overwrite: bool = False
    split: str | None = None  # only this split's images
    images: tuple[str, ...] | None = None  # only these image ids
    limit: int | None = None  # only the first `limit` images of the selection, in the reader's order
    labelled_only: bool = False  # only images with a vessel label (STARE's 400-image archive has 20 labels)
    command: str = field(default_factory=lambda: " ".join(sys.argv))

    def config_choices(self) -> dict[str, Any]:
        """The choices `make_config` takes, by name: the fields this request shares with it."""
        from dgss.extract.extractor import make_config

        taken = inspect.signature(make_config).parameters
        return {item.name: getattr(self, item.name) for item in fields(self) if item.name in taken}

    def __post_init__(self) -> None:
        """Refuse counts that would hang a cluster or silently fall back to a default, before any work."""
        from dgss.errors import DgssError

        check_settings(self, ExtractionSettings, DgssError)
        minimums = {"workers": 0, "threads_per_worker": 1}
        if self.limit is not None:
            minimums["limit"] = 1
        for name, minimum in minimums.items():
            if getattr(self, name) < minimum:
                raise DgssError(f"{name.replace('_', '-')} must be at least {minimum}, got {getattr(self, name)}")
        if isinstance(self.images, str) or (self.images is not None and not self.images):
            raise DgssError(f"images must be a non-empty tuple of image ids, got {self.images!r}: "
                            "pass e.g. images=('id1', 'id2') (--images id1,id2)")


@dataclass(frozen=True)
class ExtractionSummary:
    """What a run did: the entry it filled and how many images it computed now or found done."""

    dataset: str
    key: str
    computed: int
    already_done: int  # of the selected images
    total: int  # images in the entry: the whole dataset
    selected: int  # images this run was asked for (`total` unless a split, ids or a limit was given)
    left_to_others: int = 0  # images another run was computing (or finished) while this one ran
    unlabelled: int = 0  # images of the dataset without a vessel label: extracted, never trained on or scored


@dataclass(frozen=True)
class _ImageTask:
    """What a worker needs to rebuild the reader, extractor and entry; hashable, so each worker loads them once."""

    dataset: str
    data_root: str | None
    model: str
    device: str
    threads: int
    config_json: str  # the ExtractionConfig as JSON: hashable, exact
    store: str
    key: str
    max_native_shape: tuple[int, int]

    overwrite: bool = False

    def __call__(self, index: int) -> int | None:
        """Compute and write image `index`; None when another run holds it or has finished it since it was listed."""
        reader, extractor, entry = _loaded(self)
        image_id = entry.image_ids[index]
        return _write_claimed(entry, index, reader.has_label(image_id), self.overwrite,
                              lambda: _image_arrays(reader, extractor, image_id, self.max_native_shape))


def _image_arrays(reader: DatasetReader, extractor: FeatureExtractor, image_id: str,
                  max_native_shape: tuple[int, int]) -> tuple[dict[str, np.ndarray], bool]:
    """One image's arrays, and whether it has a vessel label."""
    sample = reader.read(image_id)
    arrays = extractor.image_arrays(sample, max_native_shape, field_of_view_deg=reader.field_of_view_deg)
    return arrays, sample.labelled


def _write_claimed(entry: Entry, index: int, labelled: bool, overwrite: bool,
                   compute: Callable[[], tuple[dict[str, np.ndarray], bool]]) -> int | None:
    """Claim image `index`, compute and write it; None when another run holds it, or has written it since it was
    listed (with `labelled` as its label state now)."""
    claim = entry.claim(index)
    if claim is None:
        return None
    try:
        if not overwrite and entry.is_done(index, labelled=labelled):
            return None
        arrays, has_label = compute()
        entry.write_image(index, arrays, labelled=has_label)
        return index
    finally:
        claim.release()


_WORKER_CACHE: dict[_ImageTask, tuple[Any, Any, Any]] = {}
_WORKER_LOCK = threading.Lock()


def _loaded(task: _ImageTask) -> tuple[Any, Any, Any]:
    """The reader, extractor and entry of `task`, loaded once per process (one model per worker).

    A long-lived worker (a `--scheduler` cluster) serves run after run: loading a new task's model drops the
    previous one, so a worker never holds more than one backbone. The lock keeps tasks that run at once in one
    worker's threads from loading the model twice.
    """
    with _WORKER_LOCK:
        if task not in _WORKER_CACHE:
            _WORKER_CACHE.clear()
            _WORKER_CACHE[task] = _load(task)
        return _WORKER_CACHE[task]


def _load(task: _ImageTask) -> tuple[Any, Any, Any]:
    import torch

    from dgss.pipelines.allocator import reuse_freed_memory

    reuse_freed_memory()  # a Dask worker is its own process: see dgss.pipelines.allocator

    from dgss.backbone.loading import load_backbone
    from dgss.extract.config import ExtractionConfig
    from dgss.datasets import get_dataset
    from dgss.extract.extractor import FeatureExtractor
    from dgss.store import FeatureStore

    torch.set_num_threads(task.threads)
    config = ExtractionConfig.from_dict(json.loads(task.config_json))
    extractor = FeatureExtractor(load_backbone(task.model, task.device), config)
    entry = FeatureStore(task.store, create=False).entry(task.dataset, task.key)
    return get_dataset(task.dataset, task.data_root), extractor, entry


def run_extraction(request: ExtractionRequest) -> ExtractionSummary:
    """Extract every selected image of `request.dataset` (all of them by default) not yet in the store under the
    request's config.

    Returns
    -------
    ExtractionSummary
        The entry's key and the counts; images already done are skipped unless `overwrite`. A dataset labelled in
        part is extracted whole, with a warning that says how many images have labels.
    """
    from dgss.backbone.loading import load_backbone
    from dgss.datasets import get_dataset
    from dgss.device import check_device
    from dgss.extract.dataset_files import files_attrs
    from dgss.extract.extractor import FeatureExtractor, make_config
    from dgss.backbone.shipped import resolve_model
    from dgss.store import FeatureStore, config_key

    check_device(request.device)
    model = resolve_model(request.model)
    reader = get_dataset(request.dataset, request.data_root)
    ids = reader.ids()
    selection = select_images(reader, request)  # a wrong split or id is refused before the store is touched
    labelled = [reader.has_label(image_id) for image_id in ids]
    note = None if request.labelled_only else reader.labels_note()  # unlabelled images are not selected then
    if note is not None:
        logger.warning(note)
    store = FeatureStore.if_present(request.store)  # checked now, created once there is an image to write
    backbone = load_backbone(model, request.device)
    config = make_config(backbone, **request.config_choices())
    key = config_key(config.to_dict())
    if store is not None:
        _replace_if_files_changed(store, reader, key, overwrite=request.overwrite)
    extractor = FeatureExtractor(backbone, config)
    shapes = [reader.shape(image_id) for image_id in ids]
    max_native_shape = (max(h for h, _ in shapes), max(w for _, w in shapes))
    first = None
    if selection and (store is None or not store.has_entry(reader.name, key)):
        with _torch_threads(request.threads_per_worker):  # as a task computes it, so both paths write equal bytes
            first = _image_arrays(reader, extractor, ids[selection[0]], max_native_shape)
    store = store or FeatureStore(request.store)
    entry = store.require_entry(
        dataset=reader.name,
        config=config.to_dict(),
        image_ids=ids,
        splits=[reader.split_of(image_id) for image_id in ids],
        arrays=extractor.entry_arrays(max_native_shape),
        coords=extractor.entry_coords(),
        attrs={**extractor.entry_attrs(), "command": request.command, "data_root": str(request.data_root or ""),
               **files_attrs(reader)},
    )
    todo = _todo(entry, selection, labelled, overwrite=request.overwrite)
    written, tasks = [], todo
    if first is not None and todo[:1] == selection[:1]:  # else another run has written it meanwhile
        written.append(_write_claimed(entry, selection[0], labelled[selection[0]], request.overwrite, lambda: first))
        tasks = todo[1:]
    task = _ImageTask(
        dataset=reader.name,
        data_root=str(request.data_root) if request.data_root else None,
        model=model,
        device=request.device,
        threads=request.threads_per_worker,
        config_json=json.dumps(config.to_dict(), sort_keys=True),
        store=str(request.store),
        key=entry.key,
        max_native_shape=max_native_shape,
        overwrite=request.overwrite,
    )
    in_process = request.workers == 0 and request.scheduler is None
    if in_process:
        _WORKER_CACHE[task] = (reader, extractor, entry)
    try:
        with _torch_threads(request.threads_per_worker if in_process else None):
            written += map_tasks(
                task,
                tasks,
                workers=request.workers,
                scheduler=request.scheduler,
                description=f"extract {reader.name}",
                done_before=len(todo) - len(tasks),
            )
    finally:
        _WORKER_CACHE.pop(task, None)
    if request.overwrite and len(selection) == len(ids):  # every image is now of the folder's current files
        entry.group.attrs.update(files_attrs(reader))
    computed = sum(index is not None for index in written)
    return ExtractionSummary(reader.name, entry.key, computed, len(selection) - len(todo), len(ids), len(selection),
                             len(todo) - computed, labelled.count(False))


def _replace_if_files_changed(store: FeatureStore, reader: DatasetReader, key: str, *, overwrite: bool) -> None:
    """Refuse an entry made from other files of the folder (DatasetError naming --overwrite), or with `overwrite`
    delete it: images added or removed change its ids, so it is made again rather than written over."""
    from dgss.extract.dataset_files import changed_files, changed_files_error

    if not store.has_entry(reader.name, key):
        return
    entry = store.entry(reader.name, key)
    if not changed_files(entry, reader.files_digest()):
        return
    if not overwrite:
        raise changed_files_error(entry, store.location)
    logger.warning("%s: its files changed since it was extracted into %s; replacing its entry %s", reader.name,
                   store.location, key)
    store.delete_entry(reader.name, key)


def _todo(entry: Entry, selection: list[int], labelled: list[bool], *, overwrite: bool) -> list[int]:
    """The selected images to compute: those not done, and those whose vessel label was added or removed since
    (named in a warning); every selected image with `overwrite`, which goes image by image (each keeps its old
    data, marked done, until write_image replaces it)."""
    if overwrite:
        return list(selection)
    done, stored = entry.done(), entry.labelled()
    relabelled = {index for index in selection if done[index] and stored[index] != labelled[index]}
    if relabelled:
        first = entry.image_ids[min(relabelled)]
        logger.warning("%s: %d extracted image(s) gained or lost a vessel label since (%s, ...): computing them again",
                       entry.dataset, len(relabelled), first)
    return [index for index in selection if not done[index] or index in relabelled]


def select_images(reader: DatasetReader, request: ExtractionRequest) -> list[int]:
    """Indices into `reader.ids()` of the images the request asks for, in the reader's order.

    DatasetError naming an unknown split (with the dataset's splits) or an unknown id (with a few valid ones).
    """
    ids = reader.ids()
    pool = reader.ids(request.split)  # DatasetError listing the splits when there is no such split
    if request.images is not None:
        _check_known(reader.name, request.split, request.images, pool)
        wanted = set(request.images)
        pool = [image_id for image_id in pool if image_id in wanted]
    if request.labelled_only:
        pool = [image_id for image_id in pool if reader.has_label(image_id)]
    if request.limit is not None:
        pool = pool[: request.limit]
    chosen = set(pool)
    return [index for index, image_id in enumerate(ids) if image_id in chosen]


def _check_known(dataset: str, split: str | None, wanted: Sequence[str], pool: list[str]) -> None:
    """Refuse the first id of `wanted` that is not in `pool`, naming it and showing a few ids that are."""
    known = set(pool)
    unknown = next((image_id for image_id in wanted if image_id not in known), None)
    if unknown is None:
        return
    where = f"{dataset}'s {split} split" if split else dataset
    examples = ", ".join(pool[:3]) + (", ..." if len(pool) > 3 else "")
    raise DatasetError(f"{where} has no image {unknown!r} (--images): valid ids are {examples}; "
                       "see `dgss datasets` for the full list")


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` torch threads (as a Dask worker would), so both paths write identical bytes."""
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
