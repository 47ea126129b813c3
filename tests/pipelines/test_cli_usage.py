"""Usage mistakes end in typer's usage message and exit 2, never a traceback; -h and --version answer."""

import importlib.metadata
import sys

import pytest

from dgss.pipelines.app import app
from dgss.pipelines.cli import main

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
