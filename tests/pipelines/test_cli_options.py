"""The CLI's options as a user meets them: each default the config's, the store named one way, `--resume` for every
resumable command, research knobs apart, and `--help` that keeps option names whole on a narrow terminal."""

import dataclasses
import inspect
import os
import subprocess
import sys

import pytest
import typer

from dgss.pipelines.app import DEFAULT_STORE
from dgss.pipelines.cli import app
from dgss.pipelines.options import ADVANCED, setting_of

COMMANDS = typer.main.get_command(app).commands
DGSS = "import sys; from dgss.pipelines.cli import main; sys.argv[0] = 'dgss'; main()"  # the console script


def _defaults(cls: type) -> dict:
    return {field.name: field.default for field in dataclasses.fields(cls)
            if field.default is not dataclasses.MISSING}


def _config_defaults() -> dict[str, dict]:
    """Per command, the defaults of the config (or API function) its options feed."""
    from dgss.aggregate.evaluation import evaluate_run
    from dgss.aggregate.training import HeadTrainingConfig, fit_head
    from dgss.extract.config import ExtractionConfig
    from dgss.pipelines.extract_job import ExtractionRequest

    def signature(function) -> dict:
        return {name: parameter.default for name, parameter in inspect.signature(function).parameters.items()
                if parameter.default is not inspect.Parameter.empty}

    training = {**_defaults(HeadTrainingConfig), "memory_gib": signature(fit_head)["keep_bytes"] / 2**30}
    extraction = {**_defaults(ExtractionConfig), **_defaults(ExtractionRequest)}
    return {"fit-head": training, "extract": extraction, "evaluate": signature(evaluate_run)}


def test_every_option_defaults_to_the_value_of_the_config_field_it_sets():
    configs = _config_defaults()
    checked = 0
    for name, command in COMMANDS.items():
        for param in command.params:
            if name not in configs or param.name not in configs[name]:
                continue
            setting = setting_of(param)
            if setting is not None:
                assert param.default is None, f"{name} {param.opts[0]}: the config supplies the default"
            shown = setting.default if setting is not None else param.default
            assert shown == configs[name][param.name], f"{name} {param.opts[0]}"
            checked += 1
    assert checked >= 35


@pytest.mark.parametrize("command", ["extract", "fit-head", "info", "verify"])
def test_the_store_is_named_by_one_option_with_one_default(command):
    (store,) = [param for param in COMMANDS[command].params if param.name == "store"]
    assert store.opts == ["--store"] and store.default == DEFAULT_STORE
    assert not [param for param in COMMANDS[command].params if param.param_type_name == "argument"]


def test_resumable_commands_resume_with_resume_and_old_spellings_are_gone():
    for command in ("fit-head", "predict", "train-diffusion"):
        assert any("--resume" in param.opts for param in COMMANDS[command].params), command
    spellings = {opt for command in COMMANDS.values() for param in command.params for opt in param.opts}
    assert "--continue" not in spellings and "--tiles" not in spellings and "--canvas-size" in spellings


@pytest.mark.parametrize("command", ["extract", "fit-head", "evaluate", "predict"])
def test_research_knobs_are_listed_under_advanced(command):
    panels = {param.name: getattr(param, "rich_help_panel", None) for param in COMMANDS[command].params}
    assert ADVANCED in panels.values()
    assert panels.get("store") is None and panels.get("out", None) is None


def test_help_on_a_narrow_terminal_keeps_every_option_name_whole():
    environment = {**os.environ, "COLUMNS": "40", "TERMINAL_WIDTH": ""}
    for command, names in (("predict", ["--save-probabilities", "--tile-context"]),
                           ("fit-head", ["--validation-fraction", "--windows-per-image"])):
        shown = subprocess.run([sys.executable, "-c", DGSS, command, "--help"], capture_output=True, text=True,
                               env=environment, timeout=60).stdout
        assert all(name in shown for name in names), shown
