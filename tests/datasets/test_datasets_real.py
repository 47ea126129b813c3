"""Readers on the released copies of DRIVE, STARE and CHASE_DB1 in ../shared/datasets (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dgss.datasets import get_dataset, source_ids, target_ids

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
EXPECTED = {
    "DRIVE": ({"training": 20, "test": 20}, "21_training", 45.0),
    "STARE": ({"all": 20}, "im0001", 35.0),
    "CHASE_DB1": ({"all": 28}, "Image_01L", 30.0),
}


def _summary(name: str) -> dict:
    """Read every image of a shared copy once and keep what the tests look at (not the pixels)."""
    if not (SHARED / name).is_dir():
        pytest.skip(f"shared copy of {name} not found at {SHARED / name}")
    reader = get_dataset(name, SHARED)
    records = {}
    for image_id in reader.ids():
        sample = reader.read(image_id)
        records[image_id] = {
            "sample_id": sample.id,
            "split": sample.split,
            "dtypes": (sample.image.dtype, sample.vessel.dtype, sample.fov.dtype),
            "shapes": (sample.image.shape, sample.vessel.shape, sample.fov.shape),
            "header_shape": reader.shape(image_id),
            "vessel_fraction": float(sample.vessel.mean()),
            "fov_coverage": float((sample.vessel & sample.fov).sum() / sample.vessel.sum()),
        }
    return {"reader": reader, "records": records}


@pytest.fixture(scope="module", params=list(EXPECTED))
def datasets_real(request: pytest.FixtureRequest) -> tuple[str, dict]:
    return request.param, _summary(request.param)


def test_counts_ids_and_field_angle(datasets_real: tuple[str, dict]) -> None:
    name, summary = datasets_real
    counts, first_id, field = EXPECTED[name]
    reader = summary["reader"]
    assert {split: len(ids) for split, ids in reader.splits().items()} == counts
    assert reader.ids()[0] == first_id
    assert reader.field_of_view_deg == field
    assert all(record["sample_id"] == image_id for image_id, record in summary["records"].items())
    assert all(reader.split_of(image_id) == record["split"] for image_id, record in summary["records"].items())


def test_labels_binary_and_aligned(datasets_real: tuple[str, dict]) -> None:
    _, summary = datasets_real
    for record in summary["records"].values():
        assert record["dtypes"] == (np.uint8, np.bool_, np.bool_)
        image_shape, vessel_shape, fov_shape = record["shapes"]
        assert image_shape[2] == 3 and vessel_shape == fov_shape == image_shape[:2]
        assert record["header_shape"] == image_shape[:2]
        assert 0.02 < record["vessel_fraction"] < 0.25


def test_fov_holds_labelled_vessels(datasets_real: tuple[str, dict]) -> None:
    """Published (DRIVE) and derived (STARE, CHASE_DB1) FOV masks contain >= 99% of each image's vessel pixels."""
    _, summary = datasets_real
    worst = min(record["fov_coverage"] for record in summary["records"].values())
    assert worst >= 0.99


def test_drive_source_and_target_splits() -> None:
    if not (SHARED / "DRIVE").is_dir():
        pytest.skip(f"shared copy of DRIVE not found at {SHARED / 'DRIVE'}")
    reader = get_dataset("DRIVE", SHARED)
    assert source_ids(reader) == reader.ids("training") and len(source_ids(reader)) == 20
    assert target_ids(reader)[0] == "01_test"
    stare = SHARED / "STARE"
    if stare.is_dir():
        assert source_ids(get_dataset("STARE", SHARED)) == target_ids(get_dataset("STARE", SHARED))
