"""`dgss verify --store STORE`: read back every done image, report the damaged ones, and with --repair unmark them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dgss.errors import StoreError
from dgss.pipelines.app import DEFAULT_STORE, STORE_HELP, app

if TYPE_CHECKING:  # zarr is imported by the command itself, so that `dgss --help` stays fast
    from dgss.store import Entry
    from dgss.store.verify import ImageCheck


@app.command()
def verify(
    store: Annotated[str, typer.Option(help=STORE_HELP)] = DEFAULT_STORE,
    dataset: Annotated[str | None, typer.Option(help="Check this dataset's entries only; default every entry.")] = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Unmark damaged images, so the next `dgss extract` recomputes just them.")
    ] = False,
) -> None:
    """Check every done image against its checksums: ok, damaged (image, array, why) or unverified (no checksums).

    Exits 1 when damage is found and not repaired, or when an entry's metadata is unreadable (--repair cannot fix
    that: the entry must be extracted again).
    """
    from dgss.store import FeatureStore

    entries = FeatureStore(store, create=False).open_entries(dataset)
    typer.echo(f"store {store}: checking {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    unrepaired = 0
    for entry in entries:
        try:
            checks = _check_entry(entry)
        except StoreError as error:
            typer.echo(f"{entry.dataset}  key {entry.key}  unreadable: {error}")
            unrepaired += 1
            continue
        damaged = [check for check in checks if check.status == "damaged"]
        _report(entry, checks, damaged)
        if damaged and repair:
            for check in damaged:
                entry.clear(check.index)
            typer.echo(
                f"  repaired: unmarked {len(damaged)} image(s); "
                f"`dgss extract --dataset {entry.dataset} --store {store}` recomputes just them"
            )
        elif damaged:
            unrepaired += len(damaged)
    if unrepaired:
        raise typer.Exit(code=1)


def _check_entry(entry: Entry) -> list[ImageCheck]:
    import numpy as np
    from tqdm import tqdm

    from dgss.store.verify import check_image

    done = [int(index) for index in np.flatnonzero(entry.done())]
    bar = tqdm(done, desc=f"verify {entry.dataset}/{entry.key}", unit="img", disable=None, leave=False)
    return [check_image(entry, index) for index in bar]


def _report(entry: Entry, checks: list[ImageCheck], damaged: list[ImageCheck]) -> None:
    counts = {status: sum(check.status == status for check in checks) for status in ("ok", "damaged", "unverified")}
    not_done = len(entry.image_ids) - len(checks)
    typer.echo(
        f"{entry.dataset}  key {entry.key}  {counts['ok']} ok, {counts['damaged']} damaged, "
        f"{counts['unverified']} unverified, {not_done} not done"
    )
    for check in damaged:
        typer.echo(f"  damaged: image {check.image_id!r} (index {check.index}): {'; '.join(check.problems)}")
    if counts["unverified"]:
        typer.echo(
            f"  unverified: {counts['unverified']} image(s) written before dgss stored checksums (their chunks exist "
            f"and decode); extract into a new store to checksum them"
        )
