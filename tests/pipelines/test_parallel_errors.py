"""A task that fails on a Dask worker is reported once, as its own dgss error; a scheduler out of reach is named."""

import pytest

from dgss.errors import DatasetError, DgssError
from dgss.pipelines.parallel import map_tasks


def _fail_on_one(index: int) -> int:
    if index == 1:
        raise DatasetError("image 1 is bad")
    return index


def test_a_worker_failure_is_the_task_error_with_no_worker_traceback(capfd):
    with pytest.raises(DatasetError, match="image 1 is bad"):
        map_tasks(_fail_on_one, [0, 1, 2], workers=1)
    printed = capfd.readouterr().err
    assert "Compute Failed" not in printed and "Traceback" not in printed, printed


def test_an_unreachable_scheduler_is_named():
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}):
        with pytest.raises(DgssError, match="tcp://127.0.0.1:9.*dask scheduler"):
            map_tasks(_fail_on_one, [0], scheduler="tcp://127.0.0.1:9")


def _double(index: int) -> int:
    return 2 * index


def test_a_cluster_that_does_not_close_in_time_keeps_the_results_and_prints_nothing(capfd, monkeypatch):
    from dask.distributed import LocalCluster

    close = LocalCluster.close

    def close_too_slowly(cluster, timeout=None):
        close(cluster, timeout=timeout)
        raise TimeoutError  # as a loaded machine's close does after its deadline

    monkeypatch.setattr(LocalCluster, "close", close_too_slowly)
    assert sorted(map_tasks(_double, [0, 1, 2], workers=1)) == [0, 2, 4]
    assert "Traceback" not in capfd.readouterr().err
