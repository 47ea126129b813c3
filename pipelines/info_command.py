"""`dgss info --store STORE`: what a feature store holds, per dataset and config, and what it costs on disk.

The store was once a positional argument (`dgss info STORE`); that form still works, for old scripts.
"""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dgss.errors import StoreError
from dgss.pipelines.app import app


@app.command()
def info(
    store: Annotated[Optional[str], typer.Option(help="Feature store: a directory or a URL such as s3://bucket/cache.zarr.")] = None,
    old_store: Annotated[
        Optional[str], typer.Argument(metavar="STORE", hidden=True, help="The store, the old way: use --store.")
    ] = None,
) -> None:
    """List the store's datasets and configs: parameters, images done/total, bytes on disk, compression ratio."""
    from dgss.store import summarize  # here, so that `dgss --help` does not import zarr

    store = _one_store(store, old_store)
    entries = summarize(store)
    typer.echo(f"store {store}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    for entry in entries:
        damaged = f" ({entry['images_damaged']} damaged)" if entry["images_damaged"] else ""
        unlabelled = entry["images_done"] - entry["images_labelled"]
        damaged += f" ({unlabelled} without a vessel label)" if unlabelled else ""
        typer.echo(
            f"{entry['dataset']}  key {entry['key']}  {entry['images_done']}/{entry['images_total']} images done"
            f"{damaged}  {_format_bytes(entry['bytes_stored'])} on disk  ratio {entry['compression_ratio']:.2f}x"
        )
        if damaged:
            typer.echo(f"    damaged: run `dgss verify --store {store} --repair`, then extract again to recompute them")
        for name, value in entry["config"].items():
            typer.echo(f"    {name}: {_format_value(value)}")


def _one_store(option: Optional[str], argument: Optional[str]) -> str:
    """The store named by --store or by the old positional argument; both may be given only if they agree."""
    if option is None and argument is None:
        raise typer.BadParameter("no store given: name one, e.g. --store cache.zarr", param_hint="'--store'")
    if option is not None and argument is not None and _compared(option) != _compared(argument):
        raise StoreError(f"two stores given, --store {option} and {argument}: name one, with --store")
    return option if option is not None else argument


def _compared(store: str) -> str | Path:
    """A store name as compared: a URL as written, a local path as a path (cache.zarr and ./cache.zarr agree)."""
    return store if "://" in store else Path(store)


def _format_bytes(count: int) -> str:
    size, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{size:.1f} {unit}"


def _format_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
