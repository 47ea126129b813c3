"""Usage mistakes end in typer's usage message and exit 2, never a traceback; -h and --version answer."""

import importlib.metadata
import sys

import pytest

from dgss.pipelines.app import app
from dgss.pipelines.cli import main
from dgss.pipelines.options import setting_of

COMMANDS = sorted(command.name or command.callback.__name__.replace("_", "-") for command in app.registered_commands)


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["dgss", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out + captured.err


def test_every_command_is_listed():
    assert {"extract", "fit-head", "evaluate", "predict", "info", "verify", "blocks", "datasets"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_is_a_usage_error(monkeypatch, capsys, command):
    code, output = _run(monkeypatch, capsys, command, "--no-such-option")
    assert code == 2 and "No such option" in output and "Traceback" not in output


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["fit-head"], ["fit-head", "--source", "A", "--store", "s",
                                                                         "--out", "o", "--epochs", "0"],
                                  ["extract", "--dataset", "DRIVE", "--workers", "-1"],
                                  ["extract", "--dataset", "DRIVE", "--threads-per-worker", "0"]])
def test_usage_mistakes_exit_2_without_a_traceback(monkeypatch, capsys, args):
    code, output = _run(monkeypatch, capsys, *args)
    assert code == 2 and "Traceback" not in output


def test_version_and_short_help(monkeypatch, capsys):
    code, output = _run(monkeypatch, capsys, "--version")
    assert code == 0 and output.strip() == f"dgss {importlib.metadata.version('dgss')}"
    code, output = _run(monkeypatch, capsys, "-h")
    assert code == 0 and "fit-head" in output


def _numeric_options() -> list[tuple[str, str, float]]:
    """(command, option, its lower bound) for every numeric option of every command."""
    import typer

    found = []
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            if param.param_type_name != "option" or param.is_flag:
                continue
            annotation = str(param.type_descriptor) if hasattr(param, "type_descriptor") else ""
            setting = setting_of(param)
            minimum = setting.low if setting is not None and setting.kind in (int, float) else param.min
            if minimum is not None or "int" in annotation or "float" in annotation:
                found.append((name, param.opts[0], minimum))
    return found


def test_every_numeric_option_has_a_lower_bound():
    unbounded = [f"{command} {option}" for command, option, minimum in _numeric_options() if minimum is None]
    assert _numeric_options() and not unbounded


@pytest.mark.parametrize(("command", "option", "minimum"), _numeric_options())
def test_a_value_below_every_numeric_option_s_bound_is_refused_before_any_work(
        monkeypatch, capsys, tmp_path, command, option, minimum):
    monkeypatch.chdir(tmp_path)
    value = minimum - 1 if isinstance(minimum, int) else minimum - 0.5
    code, output = _run(monkeypatch, capsys, command, option, str(value))
    assert code == 2 and "Traceback" not in output and option in output
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("value", ["0", "nan"])
def test_a_learning_rate_that_cannot_train_is_one_line(monkeypatch, capsys, tmp_path, value):
    monkeypatch.chdir(tmp_path)
    code, output = _run(monkeypatch, capsys, "fit-head", "--source", "A", "--store", "s", "--out", "o", "--lr", value)
    assert code in (1, 2) and "lr" in output and "Traceback" not in output  # 2: typer's range, 1: the config's
    assert not any(tmp_path.iterdir())
