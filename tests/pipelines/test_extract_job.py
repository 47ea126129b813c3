"""`dgss extract` end to end on a tiny model: resumable, deterministic, parallel, side by side, loud on bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dgss.errors import DgssError
from dgss.pipelines.cli import main
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore

DATASET = "SYNTH-A-4x64"


def _request(store: Path, model: Path, **options) -> ExtractionRequest:
    return ExtractionRequest(dataset=DATASET, store=store, model=str(model), timesteps=(10, 500), **options)


def _entry_bytes(store: Path, key: str) -> dict[str, bytes]:
    """Every array of every image of the entry, as bytes."""
    entry = FeatureStore(store, create=False).entry(DATASET, key)
    return {
        f"{name}[{index}]": entry.read(name, index).tobytes()
        for name in entry.array_specs
        for index in range(len(entry.image_ids))
    }


@pytest.fixture(scope="module")
def serial_store(tmp_path_factory, extract_model_dir) -> tuple[Path, str]:
    store = tmp_path_factory.mktemp("serial") / "features.zarr"
    summary = run_extraction(_request(store, extract_model_dir))
    return store, summary.key


def test_a_second_run_skips_every_finished_image(serial_store, extract_model_dir):
    store, key = serial_store
    summary = run_extraction(_request(store, extract_model_dir))
    assert (summary.key, summary.computed, summary.already_done) == (key, 0, 4)


def test_extracting_again_gives_identical_bytes(serial_store, extract_model_dir, tmp_path):
    store, key = serial_store
    run_extraction(_request(tmp_path / "again.zarr", extract_model_dir))
    assert _entry_bytes(tmp_path / "again.zarr", key) == _entry_bytes(store, key)


def test_two_dask_workers_write_the_same_bytes_as_a_serial_run(serial_store, extract_model_dir, tmp_path):
    store, key = serial_store
    summary = run_extraction(_request(tmp_path / "dask.zarr", extract_model_dir, workers=2))
    assert summary.computed == 4
    assert _entry_bytes(tmp_path / "dask.zarr", key) == _entry_bytes(store, key)


def test_two_configs_live_side_by_side(serial_store, extract_model_dir, tmp_path):
    store, key = serial_store
    copy = tmp_path / "two.zarr"
    run_extraction(_request(copy, extract_model_dir))
    other = run_extraction(ExtractionRequest(dataset=DATASET, store=copy, model=str(extract_model_dir), timesteps=(50,)))
    assert other.key != key
    keys = {info.key for info in FeatureStore(copy, create=False).entries()}
    assert keys == {key, other.key}
    assert _entry_bytes(copy, key) == _entry_bytes(store, key)


KILL_ON_THIRD_IMAGE = """
import os, signal, sys
from dgss.pipelines.cli import main
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store.entry import Entry

original = Entry.write_image
def write_then_die(self, index, arrays, **options):
    if index == 2:  # half an image on disk, marker never written
        self.array("image")[index] = arrays["image"]
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, index, arrays, **options)
Entry.write_image = write_then_die
run_extraction(ExtractionRequest(dataset=sys.argv[1], store=sys.argv[2], model=sys.argv[3], timesteps=(10, 500)))
"""


def test_a_killed_run_resumes_to_the_same_store(serial_store, extract_model_dir, tmp_path):
    store, key = serial_store
    killed = tmp_path / "killed.zarr"
    result = subprocess.run(
        [sys.executable, "-c", KILL_ON_THIRD_IMAGE, DATASET, str(killed), str(extract_model_dir)],
        capture_output=True,
    )
    assert result.returncode == -9
    assert FeatureStore(killed, create=False).entry(DATASET, key).done().tolist() == [True, True, False, False]
    summary = run_extraction(_request(killed, extract_model_dir))
    assert (summary.computed, summary.already_done) == (2, 2)
    assert _entry_bytes(killed, key) == _entry_bytes(store, key)


def test_overwrite_recomputes_every_image(serial_store, extract_model_dir, tmp_path):
    store, key = serial_store
    run_extraction(_request(tmp_path / "o.zarr", extract_model_dir))
    summary = run_extraction(_request(tmp_path / "o.zarr", extract_model_dir, overwrite=True))
    assert (summary.computed, summary.already_done) == (4, 0)
    assert _entry_bytes(tmp_path / "o.zarr", key) == _entry_bytes(store, key)


def _dgss(capsys, monkeypatch, *args: str) -> tuple[int, str]:
    """Run the `dgss` console entry point in this process; its exit code and what it printed on stderr."""
    monkeypatch.setenv("DGSS_DATA_ROOT", "/nonexistent")
    monkeypatch.setattr(sys, "argv", ["dgss", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--dataset", "NOPE"], "DRIVE"),
        (["--dataset", DATASET, "--model", "/no/such/model"], "/no/such/model"),
        (["--dataset", DATASET, "--blocks", "up_blocks.99"], "up_blocks.0"),
        (["--dataset", DATASET, "--timesteps", "5000"], "5000"),
        (["--dataset", DATASET, "--timesteps", "ten"], "ten"),  # a usage error: exit 2
    ],
)
def test_bad_input_is_one_line_and_leaves_the_store_untouched(
    serial_store, extract_model_dir, capsys, monkeypatch, arguments, expected
):
    store, key = serial_store
    before = _entry_bytes(store, key)
    if "--model" not in arguments:
        arguments = [*arguments, "--model", str(extract_model_dir)]
    code, stderr = _dgss(capsys, monkeypatch, "extract", "--store", str(store), *arguments)
    lines = stderr.strip().splitlines()
    if "ten" in arguments:
        assert code == 2 and "'--timesteps'" in stderr and expected in stderr and "Traceback" not in stderr, stderr
    else:
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], stderr
    assert _entry_bytes(store, key) == before


def test_a_store_path_that_is_a_file_is_refused(extract_model_dir, tmp_path, capsys, monkeypatch):
    not_a_store = tmp_path / "features.zarr"
    not_a_store.write_text("precious")
    code, stderr = _dgss(
        capsys, monkeypatch, "extract", "--dataset", DATASET, "--store", str(not_a_store), "--model", str(extract_model_dir)
    )
    assert code == 1 and "features.zarr" in stderr and len(stderr.strip().splitlines()) == 1
    assert not_a_store.read_text() == "precious"


def test_the_xarray_view_names_every_axis(serial_store):
    import dgss.store

    store, key = serial_store
    view = dgss.store.open(store, DATASET)
    assert list(view["image"].values) == FeatureStore(store, create=False).entry(DATASET, key).image_ids
    assert list(view["timestep"].values) == [10, 500]
    assert list(view["band"].values) == ["LL", "LH", "HL", "HH"]
    feature = next(name for name in view.data_vars if name.startswith("features/"))
    assert view[feature].dims[:3] == ("image", "timestep", "band")
    assert view[feature].dtype == np.float32
    entry = FeatureStore(store, create=False).entry(DATASET, key)
    assert np.array_equal(view[feature].sel(image=entry.image_ids[1]).values, entry.read(feature, 1).astype(np.float32))


def test_two_images_at_once_in_one_worker_do_not_mix_their_features(serial_store, extract_model_dir, tmp_path):
    """A cluster whose worker runs two tasks at once in two threads (as the SLURM recipe's processes=1, cores=8
    does) shares one network between them: every image must still get its own features, byte for byte."""
    from dask.distributed import LocalCluster

    store, key = serial_store
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        summary = run_extraction(_request(tmp_path / "threads.zarr", extract_model_dir,
                                          scheduler=cluster.scheduler_address))
    assert summary.computed == 4
    assert _entry_bytes(tmp_path / "threads.zarr", key) == _entry_bytes(store, key)


@pytest.mark.parametrize(("option", "value"), [("workers", -1), ("threads_per_worker", 0), ("input_size", 0),
                                               ("draws", 0), ("inversion_steps", 0)])
def test_counts_that_would_hang_or_fall_back_are_refused(extract_model_dir, tmp_path, option, value):
    with pytest.raises(DgssError, match=f"{option.replace('_', '[-_]')} must be at least"):
        _request(tmp_path / "never.zarr", extract_model_dir, **{option: value})
    assert not (tmp_path / "never.zarr").exists()


def test_a_long_lived_worker_keeps_one_model(monkeypatch):
    from dgss.pipelines import extract_job

    loads = []
    monkeypatch.setattr(extract_job, "_load", lambda task: loads.append(task.dataset) or (task.dataset,))
    monkeypatch.setattr(extract_job, "_WORKER_CACHE", {})

    def task(dataset: str) -> extract_job._ImageTask:
        return extract_job._ImageTask(dataset=dataset, data_root=None, model="m", device="cpu", threads=1,
                                      config_json="{}", store="s", key="k", max_native_shape=(1, 1))

    for dataset in ("DRIVE", "DRIVE", "STARE", "CHASE_DB1", "CHASE_DB1"):
        extract_job._loaded(task(dataset))
    assert loads == ["DRIVE", "STARE", "CHASE_DB1"]
    assert list(extract_job._WORKER_CACHE) == [task("CHASE_DB1")]


def test_every_config_choice_of_make_config_is_a_request_field_and_reaches_it():
    import inspect

    from dgss.extract.extractor import make_config

    request = ExtractionRequest(dataset="DRIVE", store="s.zarr", mode="noised", draws=3, canvas_field_deg=50.0)
    choices = request.config_choices()
    assert set(choices) == set(inspect.signature(make_config).parameters) - {"backbone", "fov_crop"}
    assert (choices["mode"], choices["draws"], choices["canvas_field_deg"]) == ("noised", 3, 50.0)
