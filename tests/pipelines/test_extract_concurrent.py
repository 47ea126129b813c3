"""Two extraction runs on one fresh store at once: both finish, the entry is whole, and no image is computed twice."""

import multiprocessing
from pathlib import Path

from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore

DATASET = "SYNTH-A-4x64"


def _request(store: Path, model: Path) -> ExtractionRequest:
    return ExtractionRequest(dataset=DATASET, store=store, model=str(model), timesteps=(10, 500))


def _entry_bytes(store: Path) -> dict[str, bytes]:
    entry = FeatureStore(store, create=False).entry(DATASET)
    return {
        f"{name}[{index}]": entry.read(name, index).tobytes()
        for name in entry.array_specs
        for index in range(len(entry.image_ids))
    }


def _run_together(barrier, results, store: Path, model: Path) -> None:
    """One run, started when its sibling is ready too; reports how many images it computed, or its error."""
    barrier.wait()
    try:
        results.put(("ok", run_extraction(_request(store, model)).computed))
    except Exception as error:  # reported to the test, which shows it
        results.put(("error", repr(error)))


def test_two_runs_at_once_fill_one_entry_without_computing_an_image_twice(extract_model_dir, tmp_path):
    fork = multiprocessing.get_context("fork")  # the parent has torch loaded: a fork starts in milliseconds
    barrier, results = fork.Barrier(2), fork.Queue()
    shared = tmp_path / "shared.zarr"
    runs = [fork.Process(target=_run_together, args=(barrier, results, shared, extract_model_dir)) for _ in range(2)]
    for run in runs:
        run.start()
    outcomes = [results.get(timeout=60) for _ in runs]
    for run in runs:
        run.join(timeout=10)
    assert [status for status, _ in outcomes] == ["ok", "ok"], outcomes
    assert sum(computed for _, computed in outcomes) == 4, outcomes
    run_extraction(_request(tmp_path / "serial.zarr", extract_model_dir))
    assert _entry_bytes(shared) == _entry_bytes(tmp_path / "serial.zarr")
