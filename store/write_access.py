"""Writes the file system refuses, as a StoreError that names the store and the fix instead of an OSError
from deep inside zarr."""

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from dgss.errors import StoreError

_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)


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
