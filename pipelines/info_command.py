"""`dgss info --store STORE`: what a feature store holds, per dataset and config, and what it costs on disk."""

from typing import Annotated, Any

import typer

from dgss.pipelines.app import DEFAULT_STORE, STORE_HELP, app


@app.command()
def info(
    store: Annotated[str, typer.Option(help=STORE_HELP)] = DEFAULT_STORE,
) -> None:
    """List the store's datasets and configs: parameters, images done/total, bytes on disk, compression ratio."""
    from dgss.store import summarize  # here, so that `dgss --help` does not import zarr

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
