"""Entry point of the `dgss` console script: registers the commands and turns dgss errors into one line."""

import logging
import sys

from dgss.errors import DgssError
from dgss.pipelines.allocator import reuse_freed_memory
from dgss.pipelines.app import app, wide_enough_help
from dgss.progress import ConsoleHandler

# Importing a command module registers its commands on `app`, in the order `dgss --help` lists them.
from dgss.pipelines import (  # noqa: F401
    datasets_command,
    train_diffusion_command,
    blocks_command,
    extract_command,
    info_command,
    verify_command,
    fit_head_command,
    evaluate_command,
    predict_command,
    demo_command,
)


def main() -> None:
    """Run the CLI in typer's standalone mode (usage errors print the usage and exit 2, `-h`, `--version`);
    a DgssError becomes `error: <message>` on stderr and exit code 1; warnings are one line; progress lines off a
    terminal (`dgss.progress`)."""
    logging.basicConfig(level=logging.WARNING, handlers=[ConsoleHandler()])
    reuse_freed_memory()
    wide_enough_help()
    try:
        app()
    except DgssError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        sys.exit(1)


def one_line(message: str) -> str:
    """`message` with control characters escaped (a path typed with a newline in it), so an error stays one line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in message)
