"""Entry point of the `dgss` console script: registers the commands and turns dgss errors into one line."""

import logging
import sys

from dgss.errors import DgssError
from dgss.pipelines.allocator import reuse_freed_memory
from dgss.pipelines.app import app
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
    try:
        app()
    except DgssError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
