"""Pairing a dataset's image files with their label and FOV files, reporting every file left without a partner.

An image without a vessel label is not a problem: a dataset may be labelled only in part (HRF downloaded with the
glaucoma labels alone, a folder where a user labelled a subset), and its unlabelled images are still extracted, as
targets to predict on. A label or FOV mask without an image, a missing folder or a duplicate name is a problem, and
so is a labelled image without its FOV mask where the layout has masks (it would be scored inside another FOV than
its neighbours). An unlabelled image without a FOV mask gets one derived from the image, as `dgss predict` does for
any new photo: a partial download usually lacks both (HRF ships labels and masks in one archive per category).

Each published layout is a few folders in which partners share a key: the file stem minus a fixed suffix (DRIVE's
``21_training.tif`` and ``21_manual1.gif`` share ``21``). Keys are compared case-insensitively, extensions are free
(HRF mixes ``.jpg`` and ``.JPG``; STARE may be ``.ppm`` or ``.ppm.gz``). Files that are not images (READMEs,
spreadsheets, hidden files) are not part of a layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dgss.datasets.image_io import file_stem, is_image_file


@dataclass(frozen=True, kw_only=True)
class SplitLayout:
    """Where one split's files live, relative to the dataset folder, and how their names relate.

    ``fov`` is None when the dataset publishes no FOV masks. ``others`` are suffixes of files that share the image
    or label folder but are neither (CHASE_DB1's second-observer ``_2ndHO`` labels). ``id_suffix`` is appended to
    the image stem when two splits reuse the same names (FIVES).
    """

    split: str
    images: str
    labels: str
    fov: str | None = None
    image_suffix: str = ""
    label_suffix: str = ""
    fov_suffix: str = ""
    others: tuple[str, ...] = ()
    id_suffix: str = ""


@dataclass(frozen=True)
class ImageFiles:
    """The files of one image: its id and split, the image, its vessel label (None: unlabelled, never trained on or
    scored) and its FOV mask (None: derive)."""

    id: str
    split: str
    image: Path
    label: Path | None
    fov: Path | None


def scan_layout(folder: Path, layouts: list[SplitLayout]) -> tuple[list[ImageFiles], list[str]]:
    """List every image of a dataset with its partners, in natural order per split.

    Returns
    -------
    items : list of ImageFiles
        Every image whose files pair up, labelled or not.
    problems : list of str
        One line per missing folder, label or FOV mask without an image, labelled image without its FOV mask, or
        duplicate key; empty when the layout is complete.
    """
    items: list[ImageFiles] = []
    problems: list[str] = []
    seen_ids: set[str] = set()
    for layout in layouts:
        shared = tuple(
            suffix
            for folder_name, suffix in [(layout.labels, layout.label_suffix), (layout.fov, layout.fov_suffix)]
            if folder_name == layout.images and suffix
        )
        images = _keyed_files(folder / layout.images, layout.image_suffix, problems, skip=shared + layout.others)
        labels = _keyed_files(
            folder / layout.labels,
            layout.label_suffix,
            problems,
            skip=layout.others,
            strict=layout.labels != layout.images,
        )
        fovs = None
        if layout.fov is not None:
            fovs = _keyed_files(folder / layout.fov, layout.fov_suffix, problems, strict=layout.fov != layout.images)
        for key, image in sorted(images.items(), key=lambda entry: _natural_key(entry[0])):
            label = labels.pop(key, None)
            fov = fovs.pop(key, None) if fovs is not None else None
            stem = file_stem(image)
            name = stem[: len(stem) - len(layout.image_suffix)]
            unmasked = fovs is not None and fov is None and label is not None
            if unmasked:
                expected = f"{folder / str(layout.fov) / name}{layout.fov_suffix}.*"
                problems.append(f"{image}: no FOV mask for its label (expected {expected})")
            image_id = stem + layout.id_suffix
            if image_id in seen_ids:
                problems.append(f"{image}: image id {image_id!r} is used twice")
            seen_ids.add(image_id)
            if not unmasked:
                items.append(ImageFiles(image_id, layout.split, image, label, fov))
        problems.extend(f"{label}: label without an image" for label in labels.values())
        problems.extend(f"{fov}: FOV mask without an image" for fov in (fovs or {}).values())
    return items, problems


def _keyed_files(
    directory: Path, suffix: str, problems: list[str], *, skip: tuple[str, ...] = (), strict: bool = True
) -> dict[str, Path]:
    """Image files of a folder by key (stem minus ``suffix``, lower case).

    Files whose stem ends in one of ``skip`` play another role in a shared folder (CHASE_DB1 keeps labels beside
    its images) and are left out. A file whose stem lacks ``suffix`` is a problem when ``strict``, and otherwise
    belongs to another role of a shared folder.
    """
    if not directory.is_dir():
        problems.append(f"{directory}: folder missing")
        return {}
    keyed: dict[str, Path] = {}
    for path in sorted(entry for entry in directory.iterdir() if is_image_file(entry)):
        lower = file_stem(path).lower()
        if any(lower.endswith(other.lower()) for other in skip):
            continue
        if not lower.endswith(suffix.lower()):
            if strict:
                problems.append(f"{path}: name does not end in {suffix!r} as the layout expects")
            continue
        key = lower[: len(lower) - len(suffix)]
        if key in keyed:
            problems.append(f"{path}: same name as {keyed[key].name}; keep one of them")
            continue
        keyed[key] = path
    return keyed


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders embedded numbers by value (``2_A`` before ``10_A``)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", text))
