"""Claim files: at most one live process at a time creates an entry or computes an image, across runs and hosts that
share the store's file system, with no lock server.

A claim is a file made with O_CREAT|O_EXCL that holds `host pid start-time`, deleted on release. A claim whose
process is gone (same host, pid not alive) or older than :data:`STALE_AFTER_S` is stale and taken over, so a killed
run never blocks an image for long; taking over a live but slow claim costs a duplicate computation, never mixed data
(each image's chunks are replaced whole and its done marker is written last). Stores that are not on a local file
system (an object store such as `s3://...`, a `MemoryStore`) have no claims: they always succeed and leave no file.
Two runs on one such store at once may therefore both compute an image, still without mixing data.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

from zarr.abc.store import Store
from zarr.storage import LocalStore

CLAIMS_FOLDER = ".claims"
"""Folder of an entry's claim files; its dot keeps it out of the entry's array names and zarr's metadata."""
STALE_AFTER_S = 1800.0
"""Age after which any claim is taken over: far longer than one image takes, short enough to resume a dead cluster."""
POLL_S = 0.05


class Claim:
    """A held claim; :meth:`release` deletes its file (a no-op where the store has no file system)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def release(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def claims_folder(store: Store, group_path: str) -> Path | None:
    """Where the claims of the entry at `group_path` live; None when the store is not a local folder (a claim is a
    file made with O_EXCL)."""
    if not isinstance(store, LocalStore):
        return None
    return Path(store.root) / group_path / CLAIMS_FOLDER


def try_claim(path: Path | None, *, stale_after_s: float = STALE_AFTER_S) -> Claim | None:
    """The claim on `path`, or None while a live process holds it."""
    if path is None:
        return Claim(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # a stale claim taken over by a third run between our look and our create: look again
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            seen = _stale_holder(path, stale_after_s)
            if seen is None:
                return None
            _take_over(path, seen)
            continue
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{socket.gethostname()} {os.getpid()} {time.time():.3f}\n")
        return Claim(path)
    return None


def wait_for_claim(path: Path | None, *, stale_after_s: float = STALE_AFTER_S) -> Claim:
    """The claim on `path`, waiting while a live process holds it (used for the short step of creating an entry)."""
    while (claim := try_claim(path, stale_after_s=stale_after_s)) is None:
        time.sleep(POLL_S)
    return claim


def _stale_holder(path: Path, stale_after_s: float) -> str | None:
    """The claim's text when its holder is dead or it is too old ("" when it is gone already); None when it is live."""
    try:
        text, written = path.read_text(), path.stat().st_mtime
    except FileNotFoundError:
        return ""
    parts = text.split()
    started = float(parts[2]) if len(parts) == 3 else written  # a claim being written has no text yet
    if time.time() - started > stale_after_s:
        return text
    if len(parts) == 3 and parts[0] == socket.gethostname() and not _alive(int(parts[1])):
        return text
    return None


def _take_over(path: Path, seen: str) -> None:
    """Remove the stale claim `seen`; if another run replaced it meanwhile, put that fresh claim back."""
    if not seen:
        return
    grave = path.with_name(f"{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return
    if grave.read_text() != seen:
        try:
            os.link(grave, path)
        except FileExistsError:
            pass
    grave.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
