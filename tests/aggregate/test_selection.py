"""Training a head on part of a cache: the chosen blocks and timesteps are read, recorded and used again."""

import json

import pytest
from typer.testing import CliRunner

from dgss.aggregate.data import CachedImages
from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.run import RUN_FILE, load_run
from dgss.aggregate.selection import is_part_of, select_spec
from dgss.aggregate.spec import CacheSpec
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.errors import DgssError
from dgss.pipelines.app import app
from dgss.pipelines.cli import main  # noqa: F401  registers every command on `app`
from dgss.store import FeatureStore

FINE_LATE = dict(blocks=("up_blocks.2",), timesteps=(10,))


def cached_spec(entry) -> CacheSpec:
    return CacheSpec.from_entry_attrs(entry.config, entry.attrs)


def test_a_part_keeps_cache_order_and_drops_levels_left_empty(aggregate_cache):
    spec = cached_spec(aggregate_cache("SRC", n_images=1))
    part = select_spec(spec, ["up_blocks.2", "up_blocks.0"], [10])
    assert [block.name for block in part.blocks] == ["up_blocks.0", "up_blocks.2"]
    assert part.levels == ("coarse", "fine") and part.timesteps == (10,)
    assert select_spec(spec) == spec and is_part_of(part, spec) and not is_part_of(spec, part)


def test_a_block_or_timestep_the_cache_lacks_is_named_with_those_it_holds(aggregate_cache):
    spec = cached_spec(aggregate_cache("SRC", n_images=1))
    with pytest.raises(DgssError, match=r"block\(s\) mid_block not in the cache.*up_blocks.0, up_blocks.1"):
        select_spec(spec, ["mid_block"])
    with pytest.raises(DgssError, match=r"timestep\(s\) 5 not in the cache, which holds 1, 10"):
        select_spec(spec, timesteps=[5, 10])


def test_cached_images_of_a_part_hold_only_its_block_and_timestep(aggregate_cache):
    entry = aggregate_cache("SRC", n_images=1)
    part = select_spec(cached_spec(entry), **FINE_LATE)
    item = CachedImages([(entry, 0)], spec=part)[0]
    whole = CachedImages([(entry, 0)])[0]
    assert sorted(name for name in item if name.startswith("features/")) == ["features/up_blocks.2"]
    assert item["features/up_blocks.2"].shape[0] == 1
    assert (item["features/up_blocks.2"][0] == whole["features/up_blocks.2"][1]).all()  # timestep 10 is second


def test_a_head_trained_on_one_block_and_timestep_is_scored_on_the_whole_cache(aggregate_store, tmp_path):
    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [16]}, epochs=8, lr=1e-2,
                                validation_fraction=0.0, **FINE_LATE)
    run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", config)
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert [block["name"] for block in record["spec"]["blocks"]] == ["up_blocks.2"]
    assert record["spec"]["timesteps"] == [10] and record["training"]["timesteps"] == [10]
    whole = load_run(run_dir)
    assert len(whole.spec.blocks) == 1
    results = evaluate_run(run_dir, None, ["TGT"], tmp_path / "report", overlays=0)
    assert results["targets"]["TGT"]["pooled"]["dice"] > 0.7  # the fine block alone carries the vessels


def test_fit_head_command_takes_blocks_and_timesteps_and_names_a_wrong_one(aggregate_store, tmp_path):
    base = ["fit-head", "--source", "SRC", "--store", str(aggregate_store), "--head", "mlp",
            "--head-param", "hidden=[4]", "--epochs", "1"]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "run"), "--blocks", "up_blocks.1,up_blocks.2",
                                      "--timesteps", "1"])
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "run" / RUN_FILE).read_text())["spec"]
    assert [block["name"] for block in spec["blocks"]] == ["up_blocks.1", "up_blocks.2"] and spec["timesteps"] == [1]
    for option, value, message in (("--timesteps", "late", "not a comma list of int"),
                                   ("--timesteps", "7", "timestep(s) 7 not in the cache"),
                                   ("--blocks", "up_blocks.9", "block(s) up_blocks.9 not in the cache")):
        result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / option), option, value])
        shown = result.output if isinstance(result.exception, SystemExit) else str(result.exception)
        assert result.exit_code != 0 and message in shown, shown  # a usage error (exit 2) or a DgssError
        assert not (tmp_path / option / RUN_FILE).exists()
    assert FeatureStore(aggregate_store).entry("SRC")  # the cache is untouched
