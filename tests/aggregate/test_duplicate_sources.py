"""A source named twice is refused by fit_head itself, for the CLI and every other caller, before anything is
written (it was trained on twice and the run exited 0)."""

import pytest

from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.errors import DgssError


@pytest.mark.parametrize("sources", [["SRC", "TGT", "SRC"]])
def test_a_source_named_twice_is_refused_by_name(aggregate_store, tmp_path, sources):
    with pytest.raises(DgssError, match="source SRC given twice") as refused:
        fit_head(aggregate_store, sources, tmp_path / "run", HeadTrainingConfig(head="mlp", epochs=1))
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "run").exists()
