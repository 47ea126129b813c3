"""`dgss datasets`: which datasets are where, and (with --check) whether every file of them reads."""

from __future__ import annotations

from typing import Annotated

import typer

from dgss.datasets.overview import DatasetStatus, survey_datasets
from dgss.datasets.registry import DATA_ROOT_ENV, resolve_data_root
from dgss.pipelines.app import app

_COLUMNS = ("dataset", "status", "images", "ground truth", "FOV", "field", "location")


@app.command()
def datasets(
    data_root: Annotated[
        str | None,
        typer.Option(help=f"Folder holding one folder per dataset; default ${DATA_ROOT_ENV}, else ./data."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Read every file and list every problem; exit 1 if there is any.")
    ] = False,
) -> None:
    """List every known dataset: found or missing, images per split, label and FOV source."""
    statuses = survey_datasets(data_root, check=check)
    typer.echo(f"data root: {resolve_data_root(data_root).resolve()}")
    typer.echo(_table([_row(status) for status in statuses]))
    problems = [f"{status.name}: {problem}" for status in statuses for problem in status.problems]
    if problems:
        typer.echo(f"\n{len(problems)} problem(s):")
        for line in problems:
            typer.echo(f"  {line}")
    if check and problems:
        raise typer.Exit(code=1)


def _row(status: DatasetStatus) -> tuple[str, ...]:
    """One table row; a found dataset with problems says so in its status."""
    if not status.found:
        state = "missing"
    elif status.problems and not status.counts:
        state = "found, incomplete"
    elif status.problems:
        state = f"found, {len(status.problems)} problem(s)"
    else:
        state = "found"
    images = ", ".join(f"{split} {count}" for split, count in status.counts.items()) or "-"
    field = f"{status.field_of_view_deg:g} deg"
    return (status.name, state, images, status.ground_truth, status.fov_source, field, status.location)


def _table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart, under a header."""
    widths = [max(len(row[col]) for row in [_COLUMNS, *rows]) for col in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [_COLUMNS, *rows]]
    return "\n".join(lines)
