"""Fault injection: extraction SIGKILLed at seeded random chunk writes, an `--overwrite` killed the same way, and a
Dask worker killed in the middle of a task. In every case nothing finished is lost or corrupted and a rerun ends with
the bytes of an uninterrupted run."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dgss.pipelines import extract_job
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore

DATASET = "SYNTH-A-4x64"
IMAGES = 4

KILL_AT_WRITE = """
import os, signal, sys
import zarr
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction

store, model, kill_at, overwrite = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
store_chunk, writes = zarr.Array.__setitem__, 0
def store_then_maybe_die(array, selection, value):
    global writes
    if writes == kill_at:  # the write that would come next never happens: the process is gone
        os.kill(os.getpid(), signal.SIGKILL)
    store_chunk(array, selection, value)
    writes += 1
zarr.Array.__setitem__ = store_then_maybe_die
run_extraction(ExtractionRequest(dataset=sys.argv[5], store=store, model=model, timesteps=(10, 500), overwrite=overwrite))
"""

# Seeded random moments, as fractions of a run's chunk writes.
KILL_MOMENTS = sorted(round(random.Random(2026).random(), 3) for _ in range(3))


def _request(store: Path, model: Path, **options) -> ExtractionRequest:
    return ExtractionRequest(dataset=DATASET, store=store, model=str(model), timesteps=(10, 500), **options)


def _image_bytes(store: Path, index: int) -> bytes:
    entry = FeatureStore(store, create=False).entry(DATASET)
    return b"".join(entry.read(name, index).tobytes() for name in sorted(entry.array_specs))


def _done(store: Path) -> list[bool]:
    return FeatureStore(store, create=False).entry(DATASET).done().tolist()


def _kill_at_write(store: Path, model: Path, write: int, *, overwrite: bool) -> None:
    """Run an extraction in a child process that SIGKILLs itself just before its `write`-th chunk write."""
    child = subprocess.run(
        [sys.executable, "-c", KILL_AT_WRITE, str(store), str(model), str(write), "1" if overwrite else "0", DATASET],
        capture_output=True,
        text=True,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, extract_model_dir) -> Path:
    """An uninterrupted run's store."""
    store = tmp_path_factory.mktemp("reference") / "features.zarr"
    run_extraction(_request(store, extract_model_dir))
    return store


def _writes_per_image(store: Path) -> int:
    """Chunk writes of one image: each array, then its checksum row and its done marker."""
    return len(FeatureStore(store, create=False).entry(DATASET).array_specs) + 2


@pytest.mark.parametrize("moment", KILL_MOMENTS)
def test_extraction_killed_at_a_random_write_resumes_to_the_uninterrupted_bytes(
    reference, extract_model_dir, tmp_path, moment
):
    store, per_image = tmp_path / "killed.zarr", _writes_per_image(reference)
    write = int(moment * IMAGES * per_image)
    _kill_at_write(store, extract_model_dir, write, overwrite=False)
    done = _done(store)
    assert sum(done) == write // per_image  # images whose marker was written, and no other
    for index in (i for i, is_done in enumerate(done) if is_done):
        assert _image_bytes(store, index) == _image_bytes(reference, index)
    summary = run_extraction(_request(store, extract_model_dir))
    assert (summary.computed, summary.already_done) == (IMAGES - sum(done), sum(done))
    assert all(_image_bytes(store, i) == _image_bytes(reference, i) for i in range(IMAGES))


@pytest.mark.parametrize("moment", KILL_MOMENTS)
def test_overwrite_killed_at_a_random_write_loses_at_most_the_image_being_written(
    reference, extract_model_dir, tmp_path, moment
):
    store = tmp_path / "overwritten.zarr"
    run_extraction(_request(store, extract_model_dir))
    # An overwrite first unmarks the image it is about to replace (one more write), then writes it as a first run does.
    per_image = _writes_per_image(reference) + 1
    write = int(moment * IMAGES * per_image)
    _kill_at_write(store, extract_model_dir, write, overwrite=True)
    done = _done(store)
    being_written = write // per_image
    assert done == [index != being_written or write % per_image == 0 for index in range(IMAGES)]
    for index in (i for i, is_done in enumerate(done) if is_done):
        assert _image_bytes(store, index) == _image_bytes(reference, index)
    summary = run_extraction(_request(store, extract_model_dir))
    assert summary.computed == IMAGES - sum(done)
    assert _done(store) == [True] * IMAGES
    assert all(_image_bytes(store, i) == _image_bytes(reference, i) for i in range(IMAGES))


def _kill_worker_once(task, marker: Path, victim: int):
    """`task`, except that the first attempt at image `victim` SIGKILLs the Dask worker running it."""

    def run(index: int):
        if index == victim and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return task(index)

    return run


def test_a_dask_worker_killed_mid_task_is_replaced_and_the_store_is_whole(
    reference, extract_model_dir, tmp_path, monkeypatch
):
    marker = tmp_path / "worker-killed"
    map_tasks = extract_job.map_tasks
    monkeypatch.setattr(
        extract_job, "map_tasks", lambda task, todo, **options: map_tasks(_kill_worker_once(task, marker, 1), todo, **options)
    )
    store = tmp_path / "dask.zarr"
    summary = run_extraction(_request(store, extract_model_dir, workers=2))
    assert marker.exists()  # a worker was really killed
    assert (summary.computed, summary.already_done) == (IMAGES, 0)
    assert _done(store) == [True] * IMAGES
    assert all(_image_bytes(store, i) == _image_bytes(reference, i) for i in range(IMAGES))
    assert not list((store / DATASET).glob("*/.claims/*.claim"))  # the dead worker's claim was taken over, then freed
