"""The typer application every `dgss` command registers on (one module per command topic)."""

import typer

app = typer.Typer(
    name="dgss",
    help="Domain-generalizable retinal vessel segmentation from cached diffusion features.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
