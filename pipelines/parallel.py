"""Run one task per image, in this process or on a Dask cluster, with progress that follows the results (a bar on a
terminal, a log line per image elsewhere: `dgss.progress`).

Every task writes only its own image's chunks, so tasks need no locks and may finish in any order. With `workers`
> 0 a `dask.distributed.LocalCluster` of that many single-process workers is started (and closed afterwards), each
running one task at a time (a task's parallelism is its torch threads, set by the task itself); with `scheduler`
an existing cluster is used as it is.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dgss.errors import DgssError
from dgss.progress import Progress

CLOSE_TIMEOUT_S = 60
"""Seconds a local cluster gets to close; a loaded machine can need far more than distributed's default."""


@contextmanager
def dask_client(*, workers: int, scheduler: str | None) -> Iterator[Any]:
    """A `distributed.Client` on `scheduler`, or on a fresh local cluster of `workers` one-task processes.

    Distributed's own logging is silenced here and in the local workers: a failed task is reported once, as the
    task's own error, not also as a worker's traceback and a page of shutdown notices. A local cluster that does not
    close in time (a loaded machine) has its workers killed: every result was written before the close began.
    """
    from dask.distributed import Client, LocalCluster

    with _quiet_distributed():
        if scheduler is not None:
            with _scheduler_client(scheduler) as client:
                yield client
            return
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            _close(cluster)


def _close(cluster: Any) -> None:
    """Close a local cluster; a close that times out leaves nothing to wait for (its workers are killed)."""
    try:
        cluster.close(timeout=CLOSE_TIMEOUT_S)
    except (TimeoutError, OSError):
        pass


@contextmanager
def _scheduler_client(address: str) -> Iterator[Any]:
    """A client of the scheduler at `address`; DgssError naming it when it cannot be reached."""
    from dask.distributed import Client

    try:
        client = Client(address)
    except (OSError, ValueError) as error:  # a timeout or refused connection; ValueError: a malformed address
        raise DgssError(
            f"cannot reach the Dask scheduler at {address} ({error}): start it (`dask scheduler`) or check the "
            "address, or drop --scheduler to run here"
        ) from None
    with client:
        yield client


@contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Raise every `distributed` logger, and those of the event loop it runs on (tornado, asyncio), to CRITICAL for
    the duration, then restore their levels."""
    prefixes = ("distributed", "tornado", "asyncio")
    names = [*prefixes, *(name for name in logging.root.manager.loggerDict if name.startswith(prefixes))]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def map_tasks(
    task: Callable[[int], Any],
    indices: Sequence[int],
    *,
    workers: int = 0,
    scheduler: str | None = None,
    description: str = "images",
    done_before: int = 0,
) -> list[Any]:
    """Apply `task` to every index; return the results in completion order.

    `workers == 0` and no `scheduler` runs in this process, which is what a single GPU wants. A task failure
    stops the run with that task's own exception; results already written by other tasks stay valid. The progress
    counts `done_before` images of the same run done another way first (extraction's first image, by the driver).
    """
    results: list[Any] = []
    with Progress(done_before + len(indices), description, "images", initial=done_before) as progress:
        if workers == 0 and scheduler is None:
            for index in indices:
                results.append(task(index))
                progress.step()
            return results
        from dask.distributed import as_completed

        with dask_client(workers=workers, scheduler=scheduler) as client:
            futures = client.map(task, list(indices), pure=False)
            for future in as_completed(futures):
                results.append(future.result())
                progress.step()
    return results
