"""SYNTH-A/B/C: procedurally generated fundus images, so tests and demos run without downloading anything.

``SYNTH-A`` is 20 images of 512 px (first half training, second half test); ``SYNTH-A-<count>x<size>`` is a
smaller variant of the same domain for tests (e.g. ``SYNTH-B-6x128``). Images are generated on each read,
deterministically from (domain, index, size), so there are no files to check.
"""

from __future__ import annotations

from dgss.datasets.reader import DatasetReader, Sample
from dgss.datasets.synthetic import SYNTHETIC_DOMAINS, generate_fundus
from dgss.errors import DatasetError

SYNTHETIC_COUNT = 20
SYNTHETIC_SIZE = 512


class SyntheticReader(DatasetReader):
    """One synthetic domain at one count and size."""

    ground_truth = "generated"
    fov_source = "generated"

    def __init__(self, name: str, domain: str, count: int = SYNTHETIC_COUNT, size: int = SYNTHETIC_SIZE) -> None:
        if count < 2 or size < 8:
            raise DatasetError(f"{name}: need at least 2 images of at least 8 px, e.g. SYNTH-{domain}-6x128")
        self.name = name
        self.domain = domain
        self.count = count
        self.size = size
        self.field_of_view_deg = SYNTHETIC_DOMAINS[domain].field_of_view_deg

    def splits(self) -> dict[str, list[str]]:
        """First half training, second half test (the larger half is test when the count is odd)."""
        ids = [f"synth{self.domain}_{index:03d}" for index in range(self.count)]
        half = self.count // 2
        return {"training": ids[:half], "test": ids[half:]}

    def _index(self, image_id: str) -> int:
        ids = self.ids()
        if image_id not in ids:
            raise DatasetError(f"{self.name} has no image {image_id!r}; its ids are {ids[0]} .. {ids[-1]}")
        return ids.index(image_id)

    def read(self, image_id: str) -> Sample:
        """Generate the image with its vessel and FOV masks."""
        index = self._index(image_id)
        image, vessel, fov = generate_fundus(self.domain, index, self.size)
        return Sample(id=image_id, image=image, vessel=vessel, fov=fov, split=self.split_of(image_id))

    def shape(self, image_id: str) -> tuple[int, int]:
        """Square images of the configured size."""
        self._index(image_id)
        return self.size, self.size

    def check(self) -> list[str]:
        """Nothing on disk to go wrong."""
        return []
