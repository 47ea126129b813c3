"""Training on the LL band alone (`fit-head --bands LL`) and on raw maps (`extract --bands none`): the part a head
reads, that it reads nothing else, and a vote of ten heads (`--ensemble 10`)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.heads import build_head
from dgss.aggregate.run import RUN_FILE
from dgss.aggregate.selection import is_part_of, select_features, select_spec
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.aggregate.spec import BlockSpec, CacheSpec
from dgss.errors import DgssError
from dgss.pipelines.app import app
from dgss.pipelines.cli import main  # noqa: F401  registers every command on `app`
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.store import FeatureStore
from head_batches import random_batch

SMALL = {"width": 8, "kernel_channels": 4}


def _spec(bands: str) -> CacheSpec:
    levels = (("coarse", 8), ("middle", 16), ("fine", 32))
    blocks = tuple(BlockSpec(name=f"up_blocks.{i}", channels=3, height=size, width=size, level=level)
                   for i, (level, size) in enumerate(levels))
    return CacheSpec(blocks=blocks, timesteps=(10, 100), bands=bands, canvas_size=32)


def test_the_ll_part_of_a_haar_cache_has_one_band_at_half_size():
    cached = _spec("haar")
    part = select_spec(cached, bands="LL")
    assert part.band_names == ("LL",) and part.feature_shape(part.blocks[2]) == (2, 1, 3, 16, 16)
    assert select_spec(cached, bands="all") == cached and is_part_of(part, cached) and not is_part_of(cached, part)
    assert not is_part_of(part, _spec("none")) and CacheSpec.from_dict(part.to_dict()) == part


def test_band_ll_of_raw_maps_is_refused_with_the_fix():
    with pytest.raises(DgssError, match="--bands LL needs a cache of Haar bands.*--bands none"):
        select_spec(_spec("none"), bands="LL")


def test_an_ll_head_reads_the_ll_band_and_nothing_else():
    cached = _spec("haar")
    part = select_spec(cached, bands="LL")
    batch = random_batch(cached, 2)
    selected = select_features(batch, cached.timesteps, part, timestep_dim=1)
    key = cached.feature_key(cached.blocks[0])
    assert selected[key].shape[2] == 1 and torch.equal(selected[key][:, :, 0], batch[key][:, :, 0])
    changed = {name: value.clone() for name, value in batch.items()}
    for block in cached.blocks:
        changed[cached.feature_key(block)][:, :, 1:] += 5  # the detail bands LH, HL, HH
    ll_head = build_head("tsfreqagg", part, **SMALL).eval()
    full_head = build_head("tsfreqagg", cached, **SMALL).eval()
    with torch.no_grad():
        ll = [ll_head(select_features(b, cached.timesteps, part, timestep_dim=1)) for b in (batch, changed)]
        full = [full_head(b) for b in (batch, changed)]
    assert torch.equal(ll[0], ll[1]) and not torch.allclose(full[0], full[1])


def test_fit_head_bands_ll_records_the_part_and_scores_the_whole_cache(aggregate_store, tmp_path):
    result = CliRunner().invoke(app, ["fit-head", "--source", "SRC", "--store", str(aggregate_store), "--out",
                                      str(tmp_path / "run"), "--bands", "LL", "--epochs", "1", "--window", "0",
                                      "--head-param", "width=8", "--head-param", "kernel_channels=4"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / RUN_FILE).read_text())
    assert record["spec"]["bands"] == "LL" and record["training"]["bands"] == "LL"
    results = evaluate_run(tmp_path / "run", None, ["TGT"], tmp_path / "report", overlays=0)
    assert results["targets"]["TGT"]["n_images"] == 2
    refused = CliRunner().invoke(app, ["fit-head", "--source", "SRC", "--store", str(aggregate_store), "--out",
                                       str(tmp_path / "bad"), "--bands", "HH"])
    assert refused.exit_code == 2 and "HH" in refused.output


def test_a_vote_of_ten_heads_is_accepted():
    assert HeadTrainingConfig(ensemble=10).ensemble == 10
    assert HeadTrainingConfig.from_dict(HeadTrainingConfig(ensemble=12).to_dict()).ensemble == 12


def test_tsfreqagg_trains_and_scores_on_raw_maps_without_the_haar_split(extract_model_dir, tmp_path):
    request = ExtractionRequest(dataset="SYNTH-A-4x64", store=tmp_path / "raw.zarr", model=str(extract_model_dir),
                                timesteps=(10, 500), bands="none")
    summary = run_extraction(request)
    entry = FeatureStore(tmp_path / "raw.zarr").entry("SYNTH-A-4x64", summary.key)
    assert entry.coords["band"] == ["raw"]
    config = HeadTrainingConfig(head_params={**SMALL, "fusion": "bilinear"}, epochs=1, window=None,
                                validation_fraction=0.0)
    run_dir = fit_head(tmp_path / "raw.zarr", ["SYNTH-A-4x64"], tmp_path / "run", config)
    assert json.loads((run_dir / RUN_FILE).read_text())["spec"]["bands"] == "none"
    results = evaluate_run(run_dir, None, ["SYNTH-A-4x64"], tmp_path / "report", overlays=0)
    assert 0 <= results["targets"]["SYNTH-A-4x64"]["pooled"]["dice"] <= 1
