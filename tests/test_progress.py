"""Progress off a terminal: one log line per step with an ETA, copied into log.txt; the CLI's console handler."""

import io
import logging

from dgss.progress import LOGGER, ConsoleHandler, Progress, log_file, set_verbosity


def test_each_step_is_one_line_with_counts_figures_and_an_eta(caplog):
    with caplog.at_level(logging.INFO, logger="dgss"), Progress(3, "extract SYNTH-A", "images") as progress:
        progress.step(image="a")
        progress.advance(2)
        progress.report(loss="0.5")
    first, last = [record.getMessage() for record in caplog.records]
    assert first.startswith("extract SYNTH-A: 1/3 images, image a, ") and "ETA" in first
    assert last.startswith("extract SYNTH-A: 3/3 images, loss 0.5, ") and "ETA" not in last


def test_a_log_file_keeps_progress_and_warnings_whatever_the_console_shows(tmp_path):
    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # as in a notebook, or under -q
    try:
        with log_file(tmp_path / "run") as path:
            Progress(1, "fit-head", "batches").step(epoch="1/1")
            LOGGER.warning("window clamped")
        LOGGER.warning("after the run: not in its log")
    finally:
        LOGGER.setLevel(level)
    text = path.read_text()
    assert path == tmp_path / "run" / "log.txt"
    assert "INFO fit-head: 1/1 batches, epoch 1/1" in text and "WARNING window clamped" in text
    assert "after the run" not in text and LOGGER.level == level


def test_the_console_shows_progress_lines_off_a_terminal_and_prefixes_warnings(monkeypatch):
    stream = io.StringIO()
    handler = ConsoleHandler()
    handler.setStream(stream)
    monkeypatch.setattr(logging.root, "handlers", [handler])
    try:
        set_verbosity(0)
        Progress(2, "predict", "images").step()
        LOGGER.warning("no appearance target")
        LOGGER.debug("hidden")
        set_verbosity(-1)
        Progress(2, "predict", "images").step()
    finally:
        set_verbosity(0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("predict: 1/2 images")
    assert lines[1] == "warning: no appearance target"
