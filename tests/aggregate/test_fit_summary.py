"""fit-head says what it did: the images it trained and validated on, the epoch and threshold each head kept, a
window it could not use; all of it also in the run folder's log.txt."""

import logging

from dgss.aggregate.training import HeadTrainingConfig, fit_head


def test_fit_head_ends_with_a_summary_and_leaves_a_log(aggregate_store, tmp_path, caplog):
    config = HeadTrainingConfig(head="mlp", head_params={"hidden": [4]}, epochs=2, validate_every=1, window=64,
                                validation_fraction=0.34)
    with caplog.at_level(logging.INFO, logger="dgss"):
        run_dir = fit_head(aggregate_store, ["SRC"], tmp_path / "run", config)
    messages = [record.getMessage() for record in caplog.records]
    assert "--window 64 is at least the 32 px canvas of this cache: trained on whole canvases" in caplog.text
    assert "fit-head: trained on 2 images (SRC 2); validated on 1 (SRC 1)" in messages
    kept = [message for message in messages if message.startswith("fit-head: head 0: kept epoch ")]
    assert len(kept) == 1 and " of 2, threshold " in kept[0] and "validation Dice" in kept[0]
    epochs = [message for message in messages if message.startswith("fit-head: ") and "epoch 2/2" in message]
    assert epochs and "validation Dice" in epochs[0] and "loss" in epochs[0]
    log = (run_dir / "log.txt").read_text()
    assert "WARNING --window 64" in log and kept[0] in log
