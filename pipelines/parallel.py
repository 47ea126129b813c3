"""Run one task per image, in this process or on a Dask cluster, with a progress bar that follows the results.

Every task writes only its own image's chunks, so tasks need no locks and may finish in any order. With `workers`
> 0 a `dask.distributed.LocalCluster` of that many single-process workers is started (and closed afterwards), each
running one task at a time (a task's parallelism is its torch threads, set by the task itself); with `scheduler`
an existing cluster is used as it is.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm


@contextmanager
def dask_client(*, workers: int, scheduler: str | None) -> Iterator[Any]:
    """A `distributed.Client` on `scheduler`, or on a fresh local cluster of `workers` one-task processes."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:
        yield client


def map_tasks(
    task: Callable[[int], Any],
    indices: Sequence[int],
    *,
    workers: int = 0,
    scheduler: str | None = None,
    description: str = "images",
) -> list[Any]:
    """Apply `task` to every index; return the results in completion order.

    `workers == 0` and no `scheduler` runs in this process, which is what a single GPU wants. A task failure
    stops the run with that task's own exception; results already written by other tasks stay valid.
    """
    bar = tqdm(total=len(indices), desc=description, unit="img", disable=None)
    results: list[Any] = []
    with bar:
        if workers == 0 and scheduler is None:
            for index in indices:
                results.append(task(index))
                bar.update()
            return results
        from dask.distributed import as_completed

        with dask_client(workers=workers, scheduler=scheduler) as client:
            futures = client.map(task, list(indices), pure=False)
            for future in as_completed(futures):
                results.append(future.result())
                bar.update()
    return results
