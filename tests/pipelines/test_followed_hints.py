"""Hints that work when followed: the `dgss extract` command an error suggests caches the dataset under the key
that was asked for (the model, timesteps and sizes come from the recorded extraction config)."""

from __future__ import annotations

import re
import shlex

import pytest

from dgss.aggregate.evaluation import evaluate_run
from dgss.aggregate.training import HeadTrainingConfig, fit_head
from dgss.errors import StoreError
from dgss.store import FeatureStore

QUICK = HeadTrainingConfig(head="mlp", head_params={"hidden": [4]}, epochs=1, window=None, validation_fraction=0.0)


def _suggested(error: str) -> list[str]:
    (command,) = re.findall(r"`(dgss extract [^`]*)`", error)
    return shlex.split(command)[1:]


def test_the_command_fit_head_suggests_for_a_missing_source_gives_the_other_sources_key(extract_model_dir, tmp_path,
                                                                                        dgss_cli):
    store = tmp_path / "f.zarr"
    code, _, err = dgss_cli("extract", "--dataset", "SYNTH-A-4x64", "--store", str(store), "--model",
                            str(extract_model_dir), "--timesteps", "10,100", "--input-size", "32")
    assert code == 0, err
    with pytest.raises(StoreError, match="no features for SYNTH-B-4x64") as refused:
        fit_head(store, ["SYNTH-A-4x64", "SYNTH-B-4x64"], tmp_path / "run", QUICK)
    suggested = _suggested(str(refused.value))
    assert "--model" in suggested and "--timesteps" in suggested  # the hint left both out
    code, _, err = dgss_cli(*suggested)
    assert code == 0, err
    cache = FeatureStore(store, create=False)
    assert cache.entry("SYNTH-B-4x64").key == cache.entry("SYNTH-A-4x64").key
    run_dir = fit_head(store, ["SYNTH-A-4x64", "SYNTH-B-4x64"], tmp_path / "run", QUICK)

    with pytest.raises(StoreError, match="no features for SYNTH-C-4x64") as refused:
        evaluate_run(run_dir, None, ["SYNTH-C-4x64"], tmp_path / "report")
    code, _, err = dgss_cli(*_suggested(str(refused.value)))
    assert code == 0, err
    assert evaluate_run(run_dir, None, ["SYNTH-C-4x64"], tmp_path / "report", overlays=0)["targets"]
