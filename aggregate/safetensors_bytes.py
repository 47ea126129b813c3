"""Safetensors files with one byte layout per content, so a resumed run's head files hash as an uninterrupted run's.

The safetensors writer keeps the header's metadata in a hash map whose order changes from call to call: two saves of
the same tensors differ in their header bytes. Rewriting the header as JSON with sorted keys fixes the layout; the
tensor offsets are relative to the data that follows the header, so they stay valid.
"""

import json
import struct

_LENGTH = struct.Struct("<Q")  # the header's length, little-endian u64, before the header itself
_ALIGNMENT = 8  # the format pads the header with spaces to a multiple of 8 bytes


def canonical_safetensors(data: bytes) -> bytes:
    """`data`, a safetensors file, with its header rewritten as compact JSON with every key sorted."""
    (length,) = _LENGTH.unpack_from(data)
    header = json.loads(data[_LENGTH.size:_LENGTH.size + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % _ALIGNMENT)
    return _LENGTH.pack(len(text)) + text + data[_LENGTH.size + length:]
