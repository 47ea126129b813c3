"""The store on object storage: `s3://` URLs against a real S3 server (moto's server mode, on localhost), for the
store itself, extraction with Dask workers, fit-head, evaluate, `dgss info` and `dgss verify`."""

import importlib.util
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import fsspec
import pytest
from typer.testing import CliRunner

from dgss.errors import DamagedImageError, StoreError
from dgss.pipelines.app import app
from dgss.pipelines.cli import main  # registers every command on `app`
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.pipelines.info_command import info
from dgss.pipelines.verify_command import verify
from dgss.store import FeatureStore, store_location, summarize
from dgss.store.integrity import chunk_path
from store_samples import entry_kwargs, image_arrays, invoke_alone

BUCKET = "dgss-test"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on localhost for the whole session (skipped where moto is not installed)."""
    server = pytest.importorskip("moto.server", reason="moto[server] is not installed: pip install -e '.[dev]'")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    moto = server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh store URL in the test bucket, with the endpoint and fake credentials in the environment, as a user
    sets them (Dask worker processes inherit them); settings of the machine's own that would win are removed."""
    for name in [name for name in os.environ if name.startswith(("AWS_", "FSSPEC_S3"))]:
        monkeypatch.delenv(name)
    monkeypatch.delitem(fsspec.config.conf, "s3", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    _s3().makedirs(BUCKET, exist_ok=True)
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}.zarr"


def _s3() -> fsspec.AbstractFileSystem:
    """A client of its own, as another process would have: it shares no state with the store's."""
    return fsspec.filesystem("s3", skip_instance_cache=True)


def _object(url: str, key: str) -> str:
    return f"{url.removeprefix('s3://')}/{key}"


def test_an_entry_round_trips_through_s3_and_damage_names_the_image(s3_url: str) -> None:
    store = FeatureStore(s3_url)
    assert store.location == s3_url and store_location(s3_url) == s3_url
    entry = store.require_entry(**entry_kwargs())
    for index in (0, 1, 2):
        entry.write_image(index, image_arrays(index))
    reopened = FeatureStore(s3_url, create=False).entry("SYNTH-A")
    assert reopened.has_checksums and reopened.done().tolist() == [True, True, True, False]
    for index in (0, 1, 2):
        for name, expected in image_arrays(index).items():
            got = reopened.read(name, index)
            assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
    # Another client changes objects after this process has listed the entry: no stale listing hides it.
    assert FeatureStore(s3_url).entries()[0].n_damaged == 0
    vessel = chunk_path(reopened.group["vessel"], 0)
    _s3().rm(_object(s3_url, chunk_path(reopened.group["features/up.0"], 1)))
    _s3().pipe(_object(s3_url, vessel.replace("/c/0/", "/c/2/")), _s3().cat(_object(s3_url, vessel)))
    with pytest.raises(DamagedImageError, match=r"image 'im1' \(index 1\).*'features/up.0' has no chunk file"):
        reopened.read("features/up.0", 1)
    with pytest.raises(DamagedImageError, match=r"image 'im2' .*'vessel' does not match its checksum"):
        reopened.read("vessel", 2)
    assert FeatureStore(s3_url).entries()[0].n_damaged == 1  # the missing object; verify finds the altered one


def test_claims_on_an_object_store_always_succeed_and_leave_nothing(s3_url: str) -> None:
    entry = FeatureStore(s3_url).require_entry(**entry_kwargs())
    claim = entry.claim(0)
    assert claim is not None and claim.path is None and entry.claim(0) is not None
    assert not [key for key in _s3().find(_object(s3_url, "")) if ".claims" in key]


def test_a_missing_bucket_is_a_store_error_naming_the_fix(s3_url: str) -> None:
    with pytest.raises(StoreError, match="create its bucket first"):
        FeatureStore("s3://no-such-bucket-dgss/cache.zarr")


def test_any_fsspec_url_is_a_store() -> None:
    url = f"memory://dgss-{uuid.uuid4().hex[:8]}/cache.zarr"
    FeatureStore(url).require_entry(**entry_kwargs()).write_image(1, image_arrays(1))
    read = FeatureStore(url, create=False).entry("SYNTH-A").read("image", 1)
    assert read.tobytes() == image_arrays(1)["image"].tobytes()
    (summary,) = summarize(url)
    assert summary["images_done"] == 1 and 0 < summary["bytes_stored"] < summary["bytes_raw"]


def test_a_url_without_its_file_system_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def s3fs_missing(url: str, **options) -> None:
        raise ImportError("Install s3fs to access S3")  # what fsspec says where s3fs is not installed

    monkeypatch.setattr(fsspec, "url_to_fs", s3fs_missing)
    with pytest.raises(StoreError, match=r"^cannot open the store s3://b/cache.zarr: install dgss\[s3\]"):
        FeatureStore("s3://b/cache.zarr")
    monkeypatch.undo()
    with pytest.raises(StoreError, match="Protocol not known: nope"):
        FeatureStore("nope://b/cache.zarr")


def test_extraction_with_two_dask_workers_into_s3_writes_the_bytes_of_a_local_run(
    s3_url: str, extract_model_dir: Path, tmp_path: Path
) -> None:
    def request(store: str | Path, **options) -> ExtractionRequest:
        return ExtractionRequest(dataset="SYNTH-A-4x64", store=store, model=str(extract_model_dir),
                                 timesteps=(10, 500), **options)

    local = run_extraction(request(tmp_path / "local.zarr"))
    remote = run_extraction(request(s3_url, workers=2))
    assert (remote.key, remote.computed) == (local.key, 4)
    assert _entry_bytes(s3_url, remote.key) == _entry_bytes(tmp_path / "local.zarr", local.key)
    # The CLI keeps the URL as given (a `Path` option would turn s3://b/x into s3:/b/x).
    result = CliRunner().invoke(app, ["extract", "--dataset", "SYNTH-A-4x64", "--store", s3_url,
                                      "--model", str(extract_model_dir), "--timesteps", "10,500"])
    assert result.exit_code == 0, result.output
    assert f"0 extracted, 4 already done, 4 in all -> {s3_url}" in result.output


def _entry_bytes(store: str | Path, key: str) -> dict[str, bytes]:
    entry = FeatureStore(store, create=False).entry("SYNTH-A-4x64", key)
    return {f"{name}[{index}]": entry.read(name, index).tobytes()
            for name in entry.array_specs for index in range(len(entry.image_ids))}


def _aggregate_samples() -> ModuleType:
    """tests/aggregate's builder of tiny learnable caches (it lives in a conftest, which is not importable by name)."""
    path = Path(__file__).parents[1] / "aggregate" / "conftest.py"
    spec = importlib.util.spec_from_file_location("aggregate_samples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_head_and_evaluate_from_s3_record_the_url(s3_url: str, tmp_path: Path) -> None:
    from dgss.aggregate.evaluation import evaluate_run
    from dgss.aggregate.run import RUN_FILE
    from dgss.aggregate.training import HeadTrainingConfig, fit_head

    samples = _aggregate_samples()
    samples.aggregate_build_cache(s3_url, "SRC", n_images=3, splits=["training", "training", "test"])
    samples.aggregate_build_cache(s3_url, "TGT", n_images=2, seed=1)
    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [8]}, epochs=1, lr=1e-2, validation_fraction=0.0)
    run_dir = fit_head(s3_url, ["SRC"], tmp_path / "run", config)
    assert json.loads((run_dir / RUN_FILE).read_text())["store"] == s3_url
    results = evaluate_run(run_dir, None, ["TGT"], tmp_path / "report", overlays=0)
    assert results["store"] == s3_url and results["targets"]["TGT"]["n_images"] == 2
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run_dir), "--target", "TGT", "--store", s3_url,
                                      "--report", str(tmp_path / "cli"), "--overlays", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "cli" / "TGT" / "scores.json").read_text())["store"] == s3_url


def test_info_and_verify_on_an_s3_url(s3_url: str) -> None:
    entry = FeatureStore(s3_url).require_entry(**entry_kwargs())
    for index in (0, 1):
        entry.write_image(index, image_arrays(index))
    listed = invoke_alone(info, "--store", s3_url)
    assert listed.exit_code == 0, listed.output
    assert f"store {s3_url}: 1 entry" in listed.output
    assert f"SYNTH-A  key {entry.key}  2/4 images done" in listed.output and "KiB on disk" in listed.output
    _s3().rm(_object(s3_url, chunk_path(entry.group["vessel"], 1)))
    assert "2/4 images done (1 damaged)" in invoke_alone(info, "--store", s3_url).output
    checked = invoke_alone(verify, "--store", s3_url)
    assert checked.exit_code == 1, checked.output
    assert "1 ok, 1 damaged, 0 unverified, 2 not done" in checked.output
    repaired = invoke_alone(verify, "--store", s3_url, "--repair")
    assert repaired.exit_code == 0 and f"--store {s3_url}` recomputes just them" in repaired.output
    assert FeatureStore(s3_url, create=False).entry("SYNTH-A").done().tolist() == [True, False, False, False]
