"""Readers for the public retinal vessel datasets, in the folder layouts their authors release.

Ground truth is the first observer wherever there are several (DRIVE ``1st_manual``, STARE ``labels-ah``,
CHASE_DB1 ``1stHO``). Only DRIVE and FIVES have an official train/test split; the others are one ``"all"`` split.

Where a dataset publishes no FOV mask (STARE, CHASE_DB1, FIVES) it is derived from the image by
:func:`dgss.datasets.fov.derive_fov`: 5x5 median of the red channel, threshold, largest component, holes
filled, eroded by 2 px. The threshold is a property of the camera: STARE's images have a dim band with red values
of 10-25 around the disc, so STARE uses 30; CHASE_DB1's background is black (red < 10) while the rim of its darkly
pigmented fundi falls to red values near 15, so it uses 10; FIVES uses the default (20). On the released copies
these masks hold more than 99% of the labelled vessel pixels of every image.

Field angles (degrees) are those of the cameras the authors report: DRIVE 45 (Canon CR5), STARE 35 (TopCon
TRV-50), CHASE_DB1 30 (Nidek NM-200D), HRF 45 (Canon CR-1), IOSTAR 45 (EasyScan SLO), LES-AV 30, DR HAGIS 45
(Canon and Topcon cameras), FIVES 50.
"""

from __future__ import annotations

from dgss.datasets.file_reader import FileDatasetReader
from dgss.datasets.layout import SplitLayout


class DriveReader(FileDatasetReader):
    """DRIVE: ``{training,test}/images/NN_<split>.tif``, ``1st_manual/NN_manual1.gif``, ``mask/NN_<split>_mask.gif``."""

    name = "DRIVE"
    field_of_view_deg = 45.0
    ground_truth = "1st_manual"

    def layouts(self) -> list[SplitLayout]:
        return [
            SplitLayout(
                split=split,
                images=f"{split}/images",
                image_suffix=f"_{split}",
                labels=f"{split}/1st_manual",
                label_suffix="_manual1",
                fov=f"{split}/mask",
                fov_suffix=f"_{split}_mask",
            )
            for split in ("training", "test")
        ]


class StareReader(FileDatasetReader):
    """STARE: ``stare-images/imNNNN.ppm[.gz]``, ``labels-ah/imNNNN.ah.ppm[.gz]``; FOV derived."""

    name = "STARE"
    field_of_view_deg = 35.0
    ground_truth = "labels-ah"
    fov_source = "derived"
    fov_threshold = 30

    def layouts(self) -> list[SplitLayout]:
        return [SplitLayout(split="all", images="stare-images", labels="labels-ah", label_suffix=".ah")]


class ChaseReader(FileDatasetReader):
    """CHASE_DB1: flat ``Image_NNX.jpg`` + ``Image_NNX_1stHO.png``, or ``images/`` + ``manual/``; FOV derived."""

    name = "CHASE_DB1"
    field_of_view_deg = 30.0
    ground_truth = "1stHO"
    fov_source = "derived"
    fov_threshold = 10

    def layouts(self) -> list[SplitLayout]:
        folders = ("images", "manual") if (self.folder / "images").is_dir() else (".", ".")
        return [
            SplitLayout(
                split="all", images=folders[0], labels=folders[1], label_suffix="_1stHO", others=("_2ndHO",)
            )
        ]


class HrfReader(FileDatasetReader):
    """HRF: ``images/NN_{h,dr,g}.jpg``, ``manual1/NN_x.tif``, ``mask/NN_x_mask.tif`` (45 images)."""

    name = "HRF"
    field_of_view_deg = 45.0
    ground_truth = "manual1"

    def layouts(self) -> list[SplitLayout]:
        return [SplitLayout(split="all", images="images", labels="manual1", fov="mask", fov_suffix="_mask")]


class IostarReader(FileDatasetReader):
    """IOSTAR: ``image/STAR NN_ODx.jpg``, ``GT/STAR NN_ODx_GT.tif``, ``mask/STAR NN_ODx_Mask.tif`` (30 images)."""

    name = "IOSTAR"
    field_of_view_deg = 45.0
    ground_truth = "GT"

    def layouts(self) -> list[SplitLayout]:
        return [
            SplitLayout(split="all", images="image", labels="GT", label_suffix="_GT", fov="mask", fov_suffix="_Mask")
        ]


class LesAvReader(FileDatasetReader):
    """LES-AV: ``images/N.png``, ``vessel-segmentations/N.png``, ``masks/N_mask.gif`` (22 images)."""

    name = "LES-AV"
    field_of_view_deg = 30.0
    ground_truth = "vessel-segmentations"

    def layouts(self) -> list[SplitLayout]:
        return [
            SplitLayout(
                split="all", images="images", labels="vessel-segmentations", fov="masks", fov_suffix="_mask"
            )
        ]


class DrHagisReader(FileDatasetReader):
    """DR HAGIS: ``Fundus_Images/N.jpg``, ``Manual_Segmentations/N_manual_orig.png``,
    ``Mask_images/N_mask_orig.png`` (40 images).
    """

    name = "DR-HAGIS"
    field_of_view_deg = 45.0
    ground_truth = "Manual_Segmentations"

    def layouts(self) -> list[SplitLayout]:
        return [
            SplitLayout(
                split="all",
                images="Fundus_Images",
                labels="Manual_Segmentations",
                label_suffix="_manual_orig",
                fov="Mask_images",
                fov_suffix="_mask_orig",
            )
        ]


class FivesReader(FileDatasetReader):
    """FIVES: ``{train,test}/Original/N_X.png`` and ``{train,test}/Ground truth/N_X.png``; FOV derived.

    Both splits number their images from 1, so ids carry the split: ``1_A_training``, ``1_A_test``.
    """

    name = "FIVES"
    field_of_view_deg = 50.0
    ground_truth = "Ground truth"
    fov_source = "derived"

    def layouts(self) -> list[SplitLayout]:
        return [
            SplitLayout(
                split=split, images=f"{folder}/Original", labels=f"{folder}/Ground truth", id_suffix=f"_{split}"
            )
            for split, folder in (("training", "train"), ("test", "test"))
        ]


PUBLISHED_READERS: dict[str, type[FileDatasetReader]] = {
    reader.name: reader
    for reader in (
        DriveReader,
        StareReader,
        ChaseReader,
        HrfReader,
        IostarReader,
        LesAvReader,
        DrHagisReader,
        FivesReader,
    )
}
