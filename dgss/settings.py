"""One definition per user setting: its type, default, bounds, help and whether it is a research knob.

A stage lists its settings once, as a :class:`Settings` class (``extract/settings.py``, ``aggregate/settings.py``);
its config dataclass takes each field's default from there and checks its values with :func:`check_settings`, and
the CLI builds each option from the same record (``dgss.pipelines.options``), so a default or a bound cannot differ
between the command line, the Python API and a saved config. Torch-free and zarr-free: ``dgss --help`` reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(kw_only=True)
class Setting:
    """One setting. `low`/`high` bound numbers (`low_open`: `low` itself is refused); `optional`: None is a value
    (its meaning in `help`); `advanced`: a research knob, listed apart in `--help`."""

    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    optional: bool = False
    advanced: bool = False
    name: str = ""  # the config field's name, set by the Settings class that holds it

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @property
    def option(self) -> str:
        """The CLI spelling: `--batch-size` for `batch_size`."""
        return "--" + self.name.replace("_", "-")

    def bounds(self) -> str:
        """The valid range in words ("at least 1", "> 0", "0..0.5"); "" when unbounded."""
        if self.low is not None and self.high is not None:
            return f"{self.low:g}..{self.high:g}"
        if self.low is not None:
            return f"> {self.low:g}" if self.low_open else f"at least {self.low:g}"
        return f"at most {self.high:g}" if self.high is not None else ""

    def problem(self, value: Any) -> str | None:
        """Why `value` is not valid here, in words that fit after the setting's name; None when it is."""
        if value is None:
            return None if self.optional else "must be given"
        if issubclass(self.kind, StrEnum):
            return None if value in set(self.kind) else f"must be one of {', '.join(self.kind)}"
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind is str:
            return None if isinstance(value, str) else "must be text"
        if isinstance(value, bool) or not isinstance(value, int if self.kind is int else (int, float)):
            return f"must be {'an integer' if self.kind is int else 'a number'}"
        if not math.isfinite(value):
            return "must be a finite number" + (f" ({self.bounds()})" if self.bounds() else "")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and value > self.high
        if below or above:
            return f"must be {self.bounds()}"
        return None

    def parse(self, text: str) -> Any:
        """A command-line value: converted to `kind` and checked; ValueError with the bound on a bad value."""
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {'an integer' if self.kind is int else 'a number'}") from None
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(f"{text!r}: {self.option} {problem}")
        return value


class LRSchedule(StrEnum):
    """Learning-rate schedules (fit-head and train-diffusion): constant, or cosine down to 0 at the last step."""

    constant = "constant"
    cosine = "cosine"


class PredictionType(StrEnum):
    """What a diffusion backbone predicts: the noise, the clean image x0, or v."""

    epsilon = "epsilon"
    sample = "sample"
    v_prediction = "v_prediction"


class Settings:
    """A stage's settings, one class attribute each (the attribute's name is the config field's)."""

    @classmethod
    def all(cls) -> Iterator[Setting]:
        for klass in reversed(cls.__mro__):
            yield from (value for value in vars(klass).values() if isinstance(value, Setting))


def check_settings(config: object, settings: type[Settings], error: type[Exception]) -> None:
    """Raise `error` naming the first field of `config` whose value its setting refuses."""
    for setting in settings.all():
        value = getattr(config, setting.name)
        problem = setting.problem(value)
        if problem is not None:
            raise error(f"{setting.name} {problem}, got {value!r}")
