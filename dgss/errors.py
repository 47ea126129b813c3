"""One small error hierarchy for all of dgss.

Every error a user can cause is a :class:`DgssError`; the CLI prints its message on one line and exits non-zero.
Messages name the file or value at fault and the fix. Nothing else in dgss is caught broadly.
"""

import errno
from collections.abc import Iterator
from contextlib import contextmanager

_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)


class DgssError(Exception):
    """Base of every error dgss raises on purpose; the message is meant for the user as it is."""


class DatasetError(DgssError, ValueError):
    """A dataset is unknown, missing, or has a file that is unreadable or does not match its partner."""


class ModelError(DgssError, ValueError):
    """A backbone path is not a diffusers model, or a block or timestep does not exist in it."""


class DeviceError(DgssError, ValueError):
    """A torch device (`--device`) is not one this machine or torch build can use."""


class StoreError(DgssError, ValueError):
    """A feature store is missing, not a store, written by another schema version, or lacks an entry."""


class DamagedImageError(StoreError):
    """An image marked done has a chunk that is missing, does not decode, or fails its checksum.

    `image_id` and `array` say what to recompute; `reason` says what is wrong, without the fix (for `dgss verify`).
    """

    def __init__(self, message: str, *, image_id: str, array: str, reason: str) -> None:
        super().__init__(message)
        self.image_id = image_id
        self.array = array
        self.reason = reason


class ConfigMismatchError(StoreError):
    """An entry or run was made with a different config than the one given; names the field that differs."""


class RunError(DgssError, ValueError):
    """A trained-head run folder is missing files, is corrupt, or does not match the store it is used with."""


@contextmanager
def store_writes(location: str) -> Iterator[None]:
    """Turn a write the file system refuses (read-only folder, mount or file) into a StoreError naming the store."""
    try:
        yield
    except OSError as error:
        if error.errno not in _REFUSED:
            raise
        raise StoreError(
            f"cannot write to the store {location} ({error.filename or 'a file in it'}: {error.strerror}): "
            "extract into a store you can write (--store), or make this one writable"
        ) from None
