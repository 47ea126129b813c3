"""The backbones shipped with dgss: present, loadable by name, small enough for the repository, one the default; a
trained run ships under a new name without touching the others."""

import sys
from pathlib import Path

import pytest

from dgss.backbone import shipped
from dgss.backbone.loading import load_backbone
from dgss.backbone.shipped import resolve_model, ship_backbone, shipped_backbone_path, shipped_backbones
from dgss.errors import ModelError, RunError
from dgss.pipelines.cli import main
from dgss.pipelines.extract_job import ExtractionRequest, run_extraction
from dgss.pretrain.presets import BackboneTrainingConfig
from dgss.pretrain.training import train_backbone

MAX_FILE_BYTES = 16 * 2**20


def test_the_shipped_backbone_is_the_default_and_loads():
    folder = shipped_backbone_path()
    assert resolve_model(None) == str(folder) and resolve_model("other/model") == "other/model"
    backbone = load_backbone(folder)
    assert backbone.sample_size == 512 and backbone.num_train_timesteps == 1000
    assert backbone.appearance is not None, "the shipped backbone must carry its pool's appearance statistics"


@pytest.mark.parametrize("name", shipped_backbones())
def test_every_shipped_backbone_loads_with_its_model_card_and_fits_in_the_repository(name):
    folder = shipped_backbone_path(name)
    card = (folder / "MODEL_CARD.md").read_text()
    assert "FUNDUS-POOL" in card and "steps" in card
    assert all(path.stat().st_size <= MAX_FILE_BYTES for path in folder.iterdir())
    backbone = load_backbone(folder)
    assert backbone.sample_size == 512 and backbone.appearance is not None


def test_fundus_pool_v1_stays_loadable_by_name():
    assert "fundus-pool-v1" in shipped_backbones()
    assert resolve_model("fundus-pool-v1") == str(shipped.BACKBONES_DIR / "fundus-pool-v1")


def test_dgss_extract_model_fundus_pool_v1_uses_the_shipped_folder(tmp_path, capsys, monkeypatch):
    """Extracting with `--model fundus-pool-v1` fills the same store entry as extracting with the folder's path."""
    store = tmp_path / "features.zarr"
    options = dict(dataset="SYNTH-A-4x64", store=store, input_size=64, timesteps=(10,), limit=1)
    monkeypatch.setattr(sys, "argv", ["dgss", "extract", "--dataset", "SYNTH-A-4x64", "--store", str(store),
                                      "--model", "fundus-pool-v1", "--input-size", "64", "--timesteps", "10",
                                      "--limit", "1"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code in (0, None), capsys.readouterr().err
    again = run_extraction(ExtractionRequest(model=str(shipped_backbone_path("fundus-pool-v1")), **options))
    assert (again.computed, again.already_done) == (0, 1)


def test_the_default_is_fundus_pool_v2_and_a_v1_entry_stays_apart_and_readable(tmp_path):
    """The new default fills its own entry: a store extracted with v1 keeps v1's features under v1's key."""
    from dgss.store import FeatureStore

    assert shipped.DEFAULT_BACKBONE == "fundus-pool-v2"
    assert resolve_model(None) == str(shipped_backbone_path("fundus-pool-v2"))
    store = tmp_path / "features.zarr"
    options = dict(dataset="SYNTH-A-4x64", store=store, input_size=64, timesteps=(10,), limit=1)
    v1 = run_extraction(ExtractionRequest(model="fundus-pool-v1", **options))
    default = run_extraction(ExtractionRequest(**options))
    assert v1.key != default.key and (v1.computed, default.computed) == (1, 1)
    cache = FeatureStore(store, create=False)
    assert {info.key for info in cache.entries()} == {v1.key, default.key}
    assert cache.entry("SYNTH-A-4x64", v1.key).attrs["model"] == str(shipped_backbone_path("fundus-pool-v1"))


def test_an_unknown_name_is_one_line_naming_the_shipped_backbones():
    with pytest.raises(ModelError, match="fundus-pool-v1") as error:
        resolve_model("fundus-pool-v0")
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    config = BackboneTrainingConfig.from_preset(
        "tiny", resolution=32, image_size=36, block_out_channels=(8, 16), steps=1, batch_size=1, sample_count=1,
        sample_steps=1,
    )
    return train_backbone(config, ["SYNTH-A-4x64"], tmp_path_factory.mktemp("run") / "model")


def test_a_shipped_run_loads_by_name_and_becomes_the_default_by_one_constant(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "BACKBONES_DIR", tmp_path / "backbones")
    folder = ship_backbone(tiny_run, "fundus-pool-v2")
    assert folder == tmp_path / "backbones" / "fundus-pool-v2"
    assert not (folder / "checkpoints").exists() and (folder / "samples_vs_real.png").is_file()
    assert shipped_backbones() == ["fundus-pool-v2"]
    assert load_backbone(resolve_model("fundus-pool-v2")).appearance is not None
    monkeypatch.setattr(shipped, "DEFAULT_BACKBONE", "fundus-pool-v2")
    assert resolve_model(None) == str(folder)


def test_shipping_never_replaces_a_backbone_nor_ships_a_folder_without_a_model(tiny_run, tmp_path):
    ship_backbone(tiny_run, "taken", tmp_path)
    with pytest.raises(RunError, match="exists already") as error:
        ship_backbone(tiny_run, "taken", tmp_path)
    assert "\n" not in str(error.value)
    with pytest.raises(RunError, match="config.json"):
        ship_backbone(tmp_path / "taken" / "nothing", "other", tmp_path)
    assert not (tmp_path / "other").exists()
