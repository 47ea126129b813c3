"""The named backbone presets: `--preset fundus-pool-v2` is the shipped default backbone's recipe, field for field."""

import json
from pathlib import Path

from click.testing import CliRunner
from typer.main import get_group

from dgss.pretrain.presets import PRESETS, RETIRED_FIELDS, BackboneTrainingConfig

MODELS = Path(__file__).resolve().parents[2] / "backbone" / "models"


def _recorded(name: str) -> dict:
    """The config a shipped backbone's training.json records, completed with the defaults of fields added since."""
    recorded = json.loads((MODELS / name / "training.json").read_text())["config"]
    complete = BackboneTrainingConfig.complete_record(recorded)
    return {key: value for key, value in complete.items() if key not in RETIRED_FIELDS | {"preset"}}


def _without_name(config: BackboneTrainingConfig) -> dict:
    return {key: value for key, value in config.to_dict().items() if key != "preset"}


def test_the_fundus_pool_v2_preset_is_the_shipped_backbones_recorded_config():
    assert _without_name(BackboneTrainingConfig.from_preset("fundus-pool-v2")) == _recorded("fundus-pool-v2")


def test_the_shipped_recipe_predicts_epsilon_and_every_preset_names_its_target():
    assert BackboneTrainingConfig.from_preset("fundus-pool-v2").prediction_type == "epsilon"
    assert all("prediction_type" in fields for fields in PRESETS.values())


def test_the_cli_preset_choices_are_the_presets():
    from dgss.pipelines.train_diffusion_command import Preset

    assert {preset.value for preset in Preset} == set(PRESETS)


def test_train_diffusion_with_the_preset_trains_the_shipped_recipe(monkeypatch, tmp_path):
    """No option of the command overrides the preset unless given: the CLI builds exactly the recorded config."""
    import dgss.pretrain.training as training
    from dgss.pipelines import train_diffusion_command  # noqa: F401  (registers the command)
    from dgss.pipelines.app import app

    built = []
    monkeypatch.setattr(training, "train_backbone", lambda config, *args, **kwargs: built.append(config) or tmp_path)
    result = CliRunner().invoke(get_group(app), ["train-diffusion", "--source", str(tmp_path), "--out",
                                                 str(tmp_path / "out"), "--preset", "fundus-pool-v2"])
    assert result.exit_code == 0, result.output
    assert _without_name(built[0]) == _recorded("fundus-pool-v2")
