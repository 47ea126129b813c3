"""typer options built from a stage's settings (`dgss.settings`), and the CLI's comma lists.

An option's default is None: the config dataclass supplies the value, and `--help` shows it. A number is converted
and checked as the config checks it, so a value out of range fails here, with exit 2 and the config's bound.
"""

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import typer

from dgss.settings import Setting

ADVANCED = "Advanced"
"""The help panel of research knobs: options a user can leave alone."""


def option(setting: Setting, *, help: str | None = None, **extra: Any) -> Any:
    """The typer option of `setting` (`help` replaces its text where the CLI means the option differently)."""
    kwargs: dict[str, Any] = {"help": help or setting.help, "show_default": _shown(setting.default),
                              "rich_help_panel": ADVANCED if setting.advanced else None, **extra}
    if setting.kind in (int, float):
        kwargs["parser"] = _Parser(setting)
        kwargs.setdefault("metavar", "INTEGER" if setting.kind is int else "FLOAT")  # a caller's metavar wins
    names = [f"{setting.option}/--no-{setting.option[2:]}"] if setting.kind is bool else [setting.option]
    info = typer.Option(*names, **kwargs)
    info.setting = setting  # read back by setting_of
    return info


class _Parser:
    """A number option's parser: the setting's own conversion and check, a usage error (exit 2) when it fails."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting

    def __call__(self, text: str) -> Any:
        try:
            return self.setting.parse(text)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None


def setting_of(param: Any) -> Setting | None:
    """The setting a click parameter was built from by :func:`option` (None for other parameters)."""
    info = getattr(getattr(param, "type_descriptor", None), "parameter_info", None)
    return getattr(info, "setting", None)


def _shown(default: Any) -> str | bool:
    if default is None:
        return False
    return default.value if isinstance(default, StrEnum) else str(default).lower() if isinstance(default, bool) \
        else str(default)


def given(**values: Any) -> dict[str, Any]:
    """The options the user gave (not None), as config keyword arguments: the config fills in the rest."""
    return {name: value for name, value in values.items() if value is not None}


def comma_list(text: str | None, option: str, kind: Callable[[str], Any] = str) -> tuple | None:
    """`a,b,c` as a tuple of `kind` (None stays None: the default); a usage error naming the option on a bad or
    empty list."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        values = tuple(kind(item) for item in items)
    except ValueError:
        values = ()
    if not values:
        raise typer.BadParameter(f"{text!r} is not a comma list of {getattr(kind, '__name__', 'value')} values, "
                                 f"e.g. {option} {'25,50' if kind is int else 'a,b'}", param_hint=f"'{option}'")
    return values


def inference_tile(tile: int | None) -> int | None:
    """--tile of evaluate and predict as the inference API takes it: the default when not given, 0 as None (the
    whole canvas at once)."""
    from dgss.aggregate.settings import InferenceSettings

    return (InferenceSettings.tile.default if tile is None else tile) or None
