"""Retinal vessel datasets by name: each reader yields, per image, the RGB image, vessel and FOV masks and split.

>>> reader = get_dataset("DRIVE", data_root="data")      # or "SYNTH-A-6x128", "folder:my_images"
>>> sample = reader.read(source_ids(reader)[0])          # Sample(id, image, vessel, fov, split)
"""

from dgss.datasets.fov import derive_fov
from dgss.datasets.image_io import read_image
from dgss.datasets.photometric import view_names
from dgss.datasets.reader import DatasetReader, Sample
from dgss.datasets.registry import (
    canonical_name,
    dataset_names,
    get_dataset,
    resolve_data_root,
    source_ids,
    target_ids,
)

__all__ = [
    "DatasetReader",
    "Sample",
    "canonical_name",
    "dataset_names",
    "derive_fov",
    "get_dataset",
    "read_image",
    "resolve_data_root",
    "source_ids",
    "target_ids",
    "view_names",
]
