"""`dgss extract --split/--images/--limit`: only the selection is computed, the entry still lists the whole dataset
(same key), and a later run fills in the rest; a wrong split or id is one line, before the store is touched."""

import logging
from pathlib import Path

import pytest

from dgss.errors import DgssError
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore

DATASET = "SYNTH-A-4x64"  # ids synthA_000 .. synthA_003; training: the first two, test: the last two
IDS = [f"synthA_{index:03d}" for index in range(4)]


def _request(store: Path, model: Path, **options) -> ExtractionRequest:
    return ExtractionRequest(dataset=DATASET, store=store, model=str(model), timesteps=(10,), **options)


def _done(store: Path, key: str) -> list[bool]:
    return FeatureStore(store, create=False).entry(DATASET, key).done().tolist()


def test_a_limit_computes_that_many_and_a_later_run_only_the_rest(extract_model_dir, tmp_path):
    store = tmp_path / "f.zarr"
    first = run_extraction(_request(store, extract_model_dir, limit=2))
    assert (first.computed, first.already_done, first.selected, first.total) == (2, 0, 2, 4)
    entry = FeatureStore(store, create=False).entry(DATASET, first.key)
    assert entry.image_ids == IDS
    assert _done(store, first.key) == [True, True, False, False]
    rest = run_extraction(_request(store, extract_model_dir))
    assert (rest.key, rest.computed, rest.already_done, rest.selected) == (first.key, 2, 2, 4)
    assert _done(store, first.key) == [True] * 4


def test_the_progress_counts_every_image_the_run_computes(extract_model_dir, tmp_path, caplog):
    """A new entry's first image is computed before the others (by the driver); the count includes it."""
    store = tmp_path / "f.zarr"
    with caplog.at_level(logging.INFO, logger="dgss"):
        run_extraction(_request(store, extract_model_dir, limit=3))  # a new entry: the first image, then two
    assert "extract SYNTH-A-4x64: 3/3 images" in caplog.text and "/2 images" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dgss"):
        run_extraction(_request(store, extract_model_dir))  # the entry exists: the last image alone
    assert "extract SYNTH-A-4x64: 1/1 images" in caplog.text


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"images": ("synthA_003", "synthA_001")}, [False, True, False, True]),
        ({"split": "test"}, [False, False, True, True]),
        ({"split": "test", "limit": 1}, [False, False, True, False]),
        ({"images": ("synthA_002", "synthA_000", "synthA_003"), "limit": 2}, [True, False, True, False]),
    ],
)
def test_a_selection_computes_exactly_its_images(extract_model_dir, tmp_path, options, expected):
    summary = run_extraction(_request(tmp_path / "f.zarr", extract_model_dir, **options))
    assert (summary.computed, summary.selected, summary.total) == (sum(expected), sum(expected), 4)
    assert _done(tmp_path / "f.zarr", summary.key) == expected


def test_the_summary_line_says_how_many_were_selected(extract_model_dir, tmp_path, dgss_cli):
    store = tmp_path / "f.zarr"
    code, out, err = dgss_cli("extract", "--dataset", DATASET, "--store", str(store),
                           "--model", str(extract_model_dir), "--timesteps", "10", "--images", "synthA_002")
    assert code == 0, err
    assert "2 of 4 selected" not in out and "1 of 4 selected, 1 extracted, 0 already done" in out


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--split", "validation"], ["'validation'", "training, test"]),
        (["--images", "synthA_001,nope"], ["'nope'", "synthA_000"]),
        (["--split", "test", "--images", "synthA_000"], ["'synthA_000'", "test split", "synthA_002"]),
    ],
)
def test_an_unknown_split_or_id_is_one_line_and_writes_nothing(
    extract_model_dir, tmp_path, dgss_cli, arguments, expected
):
    store = tmp_path / "f.zarr"
    code, _, err = dgss_cli("extract", "--dataset", DATASET, "--store", str(store),
                         "--model", str(extract_model_dir), *arguments)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(text in lines[0] for text in expected), lines[0]
    assert not store.exists()


@pytest.mark.parametrize("options", [{"limit": 0}, {"images": ()}, {"images": "synthA_000"}])
def test_a_selection_that_cannot_mean_anything_is_refused_at_once(extract_model_dir, tmp_path, options):
    with pytest.raises(DgssError, match="limit|images"):
        _request(tmp_path / "never.zarr", extract_model_dir, **options)
