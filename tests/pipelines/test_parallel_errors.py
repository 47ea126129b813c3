"""A task that fails on a Dask worker is reported once, as its own dgss error; a scheduler out of reach is named."""

import pytest

from dgss.pipelines.parallel import map_tasks
from dgss.store.errors import DatasetError, DgssError


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
