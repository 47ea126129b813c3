"""Progress that reaches the user wherever a command runs: a bar on a terminal, one log line per step elsewhere.

A batch job's log has no terminal, so a bar would print nothing until the end; there each step (images done, an
epoch with its loss and validation Dice) becomes one line with the time spent and an ETA. The lines go through the
"dgss" logger at INFO, so `-q` silences them and `log_file` copies them, with the warnings, into the `log.txt` of
the run or report folder a command writes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

LOGGER = logging.getLogger("dgss")
LOG_FILE = "log.txt"
LOG_FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_verbosity = 0


class Progress:
    """A count of `total` units of work (`unit` plural: "images"): `advance` moves the bar, `report` logs one line
    (and sets the bar's figures); both at once with `step`. `initial` units were done before (a resumed run); the
    ETA ignores them."""

    def __init__(self, total: int, description: str, unit: str, *, initial: int = 0) -> None:
        self.total, self.description, self.unit = total, description, unit
        self.done = self._initial = initial
        self._started = time.monotonic()
        self._bar = tqdm(total=total, initial=initial, desc=description, unit=unit, disable=_bar_disabled(),
                         leave=False)

    def advance(self, count: int = 1) -> None:
        self.done += count
        self._bar.update(count)

    def report(self, **figures: object) -> None:
        """Log `<description>: <done>/<total> <unit>, <figures>, <elapsed>, ETA <left>` (figures shown as given)."""
        shown = [f"{name.replace('_', ' ')} {value}" for name, value in figures.items()]
        if shown:
            self._bar.set_postfix_str(", ".join(shown), refresh=False)
        LOGGER.info("%s", self._line(shown), extra={"progress": True})

    def step(self, count: int = 1, **figures: object) -> None:
        self.advance(count)
        self.report(**figures)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _line(self, figures: list[str]) -> str:
        elapsed = time.monotonic() - self._started
        parts = [f"{self.done}/{self.total} {self.unit}", *figures, f"{_duration(elapsed)} elapsed"]
        fresh = self.done - self._initial
        if 0 < fresh and self.done < self.total:
            parts.append(f"ETA {_duration(elapsed / fresh * (self.total - self.done))}")
        return f"{self.description}: {', '.join(parts)}"


def _bar_disabled() -> bool | None:
    """No bar under `-q`; else tqdm's rule: a bar on a terminal only."""
    return True if _verbosity < 0 else None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def set_verbosity(verbosity: int) -> None:
    """-1 (`-q`): warnings only, no bars; 0: progress lines off a terminal; 1 (`-v`): debug lines too.

    The CLI's `ConsoleHandler` on the root logger follows; the "dgss" logger lets INFO through for log files.
    """
    global _verbosity
    _verbosity = verbosity
    LOGGER.setLevel(logging.DEBUG if verbosity > 0 else logging.INFO)
    for handler in logging.root.handlers:
        if isinstance(handler, ConsoleHandler):
            handler.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG))


class ConsoleHandler(logging.StreamHandler):
    """The CLI's stderr handler: warnings as `warning: ...`, progress lines as they are and only off a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_ConsoleFormatter("%(message)s"))
        self.addFilter(_progress_lines_shown)
        self.setLevel(logging.INFO)


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


def _progress_lines_shown(record: logging.LogRecord) -> bool:
    """Progress lines only off a terminal (on one, the bar shows them)."""
    return not getattr(record, "progress", False) or not sys.stderr.isatty()


@contextmanager
def log_file(folder: str | Path) -> Iterator[Path]:
    """Append every "dgss" log line (progress included, whatever the verbosity) to `folder/log.txt` meanwhile.

    The file (and its folder) is made at the first line, so a command refused before it logs anything leaves no
    folder behind. Where nothing else handles the logger (a notebook), warnings keep reaching stderr as they did.
    """
    path = Path(folder) / LOG_FILE
    handler = _FolderFileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FILE_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handlers: list[logging.Handler] = [handler]
    if not LOGGER.handlers and not logging.root.handlers:
        stderr = logging.StreamHandler()
        stderr.setLevel(logging.WARNING)
        handlers.append(stderr)
    level = LOGGER.level
    if LOGGER.getEffectiveLevel() > logging.INFO:
        LOGGER.setLevel(logging.INFO)  # the file gets the progress lines even where no console shows them
    for added in handlers:
        LOGGER.addHandler(added)
    try:
        yield path
    finally:
        for added in handlers:
            LOGGER.removeHandler(added)
        handler.close()
        LOGGER.setLevel(level)


class _FolderFileHandler(logging.FileHandler):
    """Appends to a file made, with its folder, at the first line written."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def _open(self):  # type: ignore[no-untyped-def]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()
