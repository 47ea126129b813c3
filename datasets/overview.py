"""What `dgss datasets` shows: every known dataset, whether it is there, how many images per split, where its
labels and FOV masks come from, and (on request) every problem found by reading every file.
"""

from __future__ import annotations

from dataclasses import dataclass

from dgss.datasets.file_reader import FileDatasetReader
from dgss.datasets.published import PUBLISHED_READERS
from dgss.datasets.reader import DatasetReader
from dgss.datasets.registry import dataset_names, get_dataset, resolve_data_root
from dgss.errors import DatasetError


@dataclass(frozen=True, kw_only=True)
class DatasetStatus:
    """One row of the overview; ``counts`` is empty when the dataset is missing or its index has problems."""

    name: str
    found: bool
    location: str
    counts: dict[str, int]
    ground_truth: str
    fov_source: str
    field_of_view_deg: float
    problems: tuple[str, ...]


def survey_datasets(data_root: str | None = None, *, check: bool = False) -> list[DatasetStatus]:
    """Status of every dataset in :func:`dataset_names` under a data root.

    Without ``check`` only folders are listed (fast); a dataset whose files do not pair up gets its first problem.
    With ``check`` every file of every found dataset is read and every problem is returned.
    """
    root = resolve_data_root(data_root)
    statuses = []
    for name in dataset_names():
        try:
            reader = get_dataset(name, root)
        except DatasetError:
            kind = PUBLISHED_READERS[name]
            statuses.append(
                DatasetStatus(
                    name=name,
                    found=False,
                    location=str((root / name).resolve()),
                    counts={},
                    ground_truth=kind.ground_truth,
                    fov_source=kind.fov_source,
                    field_of_view_deg=kind.field_of_view_deg,
                    problems=(),
                )
            )
            continue
        statuses.append(_found_status(reader, check=check))
    return statuses


def _found_status(reader: DatasetReader, *, check: bool) -> DatasetStatus:
    """Counts per split and problems of a dataset whose folder exists (or that is generated).

    Counts need a complete index, so a dataset whose files do not pair up shows problems only. A dataset labelled
    in part says how many images have labels beside its ground truth.
    """
    files = reader if isinstance(reader, FileDatasetReader) else None
    layout_problems = files.layout_problems() if files is not None else []
    problems = reader.check() if check else layout_problems
    counts = {} if layout_problems else {split: len(ids) for split, ids in reader.splits().items()}
    ground_truth = reader.ground_truth
    if counts:
        labelled = sum(reader.has_label(image_id) for image_id in reader.ids())
        if labelled < sum(counts.values()):
            ground_truth = f"{ground_truth} ({labelled} of {sum(counts.values())} images)"
    return DatasetStatus(
        name=reader.name,
        found=True,
        location=str(files.folder.resolve()) if files is not None else "generated",
        counts=counts,
        ground_truth=ground_truth,
        fov_source=reader.fov_source,
        field_of_view_deg=reader.field_of_view_deg,
        problems=tuple(problems),
    )
