"""Checking one done image for damage: every array read back, decoded and compared with its checksum."""

from dataclasses import dataclass
from typing import Literal

from dgss.errors import DamagedImageError
from dgss.store.entry import Entry

Status = Literal["ok", "unverified", "damaged"]


@dataclass(frozen=True)
class ImageCheck:
    """What `dgss verify` found for one done image.

    `status` is "damaged" when any array is missing, does not decode or fails its checksum (`problems` has one
    "array 'name' <why>" each), else "unverified" when the entry predates checksums, else "ok".
    """

    index: int
    image_id: str
    status: Status
    problems: tuple[str, ...]


def check_image(entry: Entry, index: int) -> ImageCheck:
    """Read every array of done image `index`; a StoreError that is not about this image (unreadable array
    metadata, done markers that do not decode) is left to the caller, since it concerns the whole entry."""
    problems = []
    for name in entry.array_specs:
        try:
            entry.read(name, index)
        except DamagedImageError as damage:
            problems.append(f"array {damage.array!r} {damage.reason}")
    status: Status = "damaged" if problems else "ok" if entry.has_checksums else "unverified"
    return ImageCheck(index=index, image_id=entry.image_ids[index], status=status, problems=tuple(problems))
