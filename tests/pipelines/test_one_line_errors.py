"""Errors a user can cause end in one line naming the value at fault: a device, a read-only store."""

import errno
import sys

import numpy as np
import pytest
import torch

from dgss.device import check_device
from dgss.errors import DeviceError, StoreError
from dgss.pipelines.cli import main
from dgss.store import ArraySpec, FeatureStore

DATASET = "SYNTH-A-4x64"


def _dgss(capsys, monkeypatch, *args: str) -> tuple[int, list[str]]:
    monkeypatch.setattr(sys, "argv", ["dgss", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line_and_creates_no_store(extract_model_dir, tmp_path, capsys, monkeypatch):
    store = tmp_path / "never.zarr"
    code, lines = _dgss(capsys, monkeypatch, "extract", "--dataset", DATASET, "--store", str(store),
                        "--model", str(extract_model_dir), "--device", "cuda")
    assert code == 1 and len(lines) == 1 and "'cuda'" in lines[0] and "--device cpu" in lines[0], lines
    assert not store.exists()


@pytest.mark.parametrize("device", ["gpu", "cuda:x"])
def test_a_device_torch_does_not_know_is_named(device):
    with pytest.raises(DeviceError, match=f"'{device}' is not a torch device"):
        check_device(device)


def test_a_read_only_store_is_named_on_the_first_write(tmp_path, monkeypatch):
    from zarr.storage import _local

    location = str(tmp_path / "s.zarr")
    entry = FeatureStore(location).require_entry(
        dataset="D", config={"c": 1}, image_ids=["a", "b"], splits=["test", "test"],
        arrays={"image": ArraySpec(shape=(2, 2), dtype="uint8", dims=("y", "x"))}, coords={}, attrs={},
    )

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(_local, "_put", refuse)
    with pytest.raises(StoreError, match=f"cannot write to the store {location} .*Permission denied"):
        entry.write_image(0, {"image": np.ones((2, 2), dtype=np.uint8)})
    monkeypatch.setattr("dgss.store.claims.os.open", refuse)
    with pytest.raises(StoreError, match=f"cannot write to the store {location}"):
        entry.claim(1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", [["fit-head", "--source", "A", "--out", "run"], ["evaluate", "--run", "run",
                                                                                   "--target", "A"]])
def test_head_commands_name_an_unusable_device_before_any_work(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    code, lines = _dgss(capsys, monkeypatch, *command, "--store", "never.zarr", "--device", "cuda")
    assert code == 1 and len(lines) == 1 and "'cuda'" in lines[0], lines
    assert not (tmp_path / "never.zarr").exists() and not (tmp_path / "run").exists()
