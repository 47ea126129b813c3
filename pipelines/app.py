"""The typer application every `dgss` command registers on (one module per command topic)."""

import importlib.metadata
from typing import Annotated

import typer

DEFAULT_STORE = "features.zarr"
"""The feature store every command reads and writes unless given --store."""
STORE_HELP = "Feature store: a directory or a URL such as s3://bucket/cache.zarr or file:///shared/cache.zarr."
HELP_MIN_WIDTH = 120
"""`--help` is laid out at least this wide, so that a narrow terminal wraps help text instead of cutting option names."""

app = typer.Typer(
    name="dgss",
    help="Domain-generalizable retinal vessel segmentation from cached diffusion features.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dgss {importlib.metadata.version('dgss')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the dgss version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print debug lines.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print warnings and results only: no progress bars "
                                                              "or progress lines (log.txt files keep them).")] = False,
) -> None:
    """Domain-generalizable retinal vessel segmentation from cached diffusion features.

    Off a terminal (a batch job) every long command logs one line per step of progress on stderr.
    """
    from dgss.progress import set_verbosity

    if verbose and quiet:
        raise typer.BadParameter("-v and -q contradict each other: pass one of them")
    set_verbosity(1 if verbose else -1 if quiet else 0)


def threshold_value(text: str | None) -> float | str | None:
    """`--threshold` of evaluate and predict: a probability (0.001 to 0.999) or "otsu"; a usage error otherwise."""
    if text is None or text == "otsu":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.001 <= value <= 0.999:
        raise typer.BadParameter(f"{text!r} is neither a threshold from 0.001 to 0.999 nor 'otsu'")
    return value


def wide_enough_help() -> None:
    """Lay `--help` out at least HELP_MIN_WIDTH columns wide (the terminal's width where it is wider)."""
    import shutil

    from typer import rich_utils

    rich_utils.MAX_WIDTH = max(shutil.get_terminal_size().columns, HELP_MIN_WIDTH)
