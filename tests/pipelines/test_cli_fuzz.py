"""Bad input found by machine: every option of every command, given values of the wrong type, out of range, empty,
huge, negative, NaN, unicode and path-like, ends in exit 2 (usage) or 1 (one line), never a traceback, a hang or a
success for a value the option refuses.

Required options and arguments name things that do not exist (a dataset, a store, a run), so a value that parses
fails fast at the first file it needs; commands that would do real work with every value valid (`demo`, `blocks`)
get only values their options refuse, which must stop at parsing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import typer.testing
from typer.testing import CliRunner

from dgss.errors import DgssError
from dgss.pipelines.cli import app, one_line
from dgss.pipelines.options import setting_of

# Every command's required options and arguments, naming things that are not there.
REQUIRED = {
    "extract": ["--dataset", "NO-SUCH-DATASET", "--store", "nothing/none.zarr"],
    "fit-head": ["--source", "NO-SUCH-DATASET", "--store", "nothing/none.zarr", "--out", "nothing/run"],
    "evaluate": ["--run", "nothing/run", "--target", "NO-SUCH-DATASET"],
    "predict": ["--run", "nothing/run", "nothing/photo.png"],
    "info": ["--store", "nothing/none.zarr"],
    "verify": ["--store", "nothing/none.zarr"],
    "train-diffusion": ["--source", "NO-SUCH-DATASET", "--out", "nothing/model"],
    "datasets": ["--data-root", "nothing/data"],
}
FAST_FAILING = set(REQUIRED)  # any value that parses meets a missing file at once
SUCCEEDS_ANYWAY = {"datasets"}  # lists what it finds (nothing) and exits 0 whatever folder it is given
TEXT = st.one_of(
    st.sampled_from(["", " ", "abc", "-1", "0", "1e308", "nan", "inf", "-inf", "１２", "é∂ƒ", "../../etc/passwd",
                     "/dev/null", "s3://", "file://", "a,b,,c", ",", "=", "width=abc", "--help"]),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=12),  # argv holds no NUL
)


@dataclass(frozen=True)
class Option:
    command: str
    flag: str
    kind: str  # "number", "choice", "text" or "flag"
    nargs: int = 1
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()


def _options() -> list[Option]:
    """Every option of every command, with what makes a value invalid."""
    found = []
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            if param.param_type_name != "option" or "--help" in param.opts:
                continue
            flag = max(param.opts, key=len)
            setting = setting_of(param)
            annotation = str(param.type_descriptor.annotation)
            if param.is_flag:
                found.append(Option(name, flag, "flag"))
            elif setting is not None and setting.kind in (int, float):
                found.append(Option(name, flag, "number", low=setting.low, high=setting.high,
                                    low_open=setting.low_open, integer=setting.kind is int))
            elif param.min is not None or param.max is not None or "int" in annotation or "float" in annotation:
                found.append(Option(name, flag, "number", nargs=param.nargs, low=param.min, high=param.max,
                                    integer="float" not in annotation))
            elif getattr(param.type_descriptor.parameter_info, "callback", None) is None and _choices(param):
                found.append(Option(name, flag, "choice", choices=_choices(param)))
            else:
                found.append(Option(name, flag, "text", nargs=param.nargs))
    # Sorted: commands register on `app` in the order their modules are first imported, which depends on which
    # tests ran before; the derandomized cases must not.
    return sorted(found, key=lambda option: (option.command, option.flag))


def _choices(param: Any) -> tuple[str, ...]:
    annotation = param.type_descriptor.annotation
    members = getattr(annotation, "__members__", None)
    if members is None:
        for argument in getattr(annotation, "__args__", ()):
            members = getattr(argument, "__members__", None) or members
    return tuple(str(member.value) for member in members.values()) if members else ()


OPTIONS = _options()


def _refused(option: Option, text: str) -> bool:
    """Whether the option's help says `text` is not a valid value (what must end in a usage error)."""
    if option.kind == "choice":
        return text not in option.choices
    if option.kind != "number":
        return False
    try:
        value = float(text) if not option.integer else int(text)
    except ValueError:
        return True
    if not math.isfinite(value):
        return True
    below = option.low is not None and (value <= option.low if option.low_open else value < option.low)
    return below or (option.high is not None and value > option.high)


def _bad_numbers(option: Option) -> st.SearchStrategy[str]:
    """Values a number option must refuse: not numbers, not finite, just out of range, far out of range."""
    outside = ["nan", "inf", "-inf", "", "abc", "1,5", "0x10", "١"]
    if option.integer:
        outside += ["1.5", "1e3"]
    if option.low is not None:
        step = 1 if option.integer else 0.5
        outside += [str(option.low - step), str(int(option.low - 10**12)), "-1e308"]
        if option.low_open:
            outside.append(str(option.low))
    if option.high is not None:
        outside += [str(option.high + (1 if option.integer else 0.01)), "1e308", str(10**30)]
    return st.sampled_from([text for text in outside if _refused(option, text)])


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Option, list[str], bool]:
    """(option, its value(s), whether the value must be refused at parsing)."""
    option = draw(st.sampled_from(OPTIONS))
    fast = option.command in FAST_FAILING
    if option.kind == "flag":
        return (option, [], False) if fast else draw(_cases())
    if option.kind == "number":
        bad = draw(_bad_numbers(option))
        good = draw(TEXT) if fast else bad
        value = draw(st.sampled_from([bad, good]))
    elif option.kind == "choice":
        value = draw(TEXT.filter(lambda text: text not in option.choices))
    else:
        value = draw(TEXT) if fast else None
    if value is None:  # free text for a command that would do real work: a refused value of another option
        return draw(_cases())
    values = [value] * option.nargs
    return option, values, _refused(option, value)


RUNNER = CliRunner()


def _invoke(args: list[str]) -> tuple[int, str]:
    """Run `dgss ARGS` as the console script does: a DgssError is one line and exit 1; any other exception fails."""
    result = RUNNER.invoke(app, args)
    if isinstance(result.exception, DgssError):
        message = one_line(str(result.exception))
        assert message.strip(), f"dgss {args}: an empty error message"
        return 1, message
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"dgss {args}: traceback ({type(result.exception).__name__}: {result.exception})") \
            from result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory):
    """An empty working directory, so that nothing a case could write lands in the repository; the click command
    built once."""
    folder = tmp_path_factory.mktemp("fuzz")
    command = typer.main.get_command(app)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(typer.testing, "_get_command", lambda _: command)  # built once, not once per case
        yield folder


@settings(max_examples=2400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=_cases())
def test_no_value_of_any_option_ends_in_a_traceback_a_hang_or_a_wrong_success(elsewhere, case):
    option, values, refused = case
    args = [option.command, *REQUIRED.get(option.command, []), option.flag, *values]
    if option.flag in REQUIRED.get(option.command, []):  # the value given replaces the placeholder
        at = args.index(option.flag)
        del args[at:at + 2]
    started = time.perf_counter()
    code, output = _invoke(args)
    assert time.perf_counter() - started < 20, f"dgss {args} took {time.perf_counter() - started:.0f} s"
    if refused:
        assert code == 2 and option.flag in output, f"dgss {args}: exit {code} for a value the option refuses"
    else:
        assert code in ((0, 1, 2) if option.command in SUCCEEDS_ANYWAY else (1, 2)), \
            f"dgss {args}: exit {code}: {output[-300:]}"


def test_every_option_of_every_command_is_walked():
    walked = {(option.command, option.flag) for option in OPTIONS}
    commands = typer.main.get_command(app).commands
    assert {name for name, _ in walked} == set(commands)
    assert len(walked) >= 80


def test_cases_the_fuzzing_found_stay_fixed(elsewhere):
    """A budget too large to count in bytes keeps every image (it overflowed once); the missing store is then the
    one-line error."""
    code, output = _invoke(["fit-head", *REQUIRED["fit-head"], "--memory-gib", "1e308"])
    assert code == 1 and "nothing/none.zarr" in output
