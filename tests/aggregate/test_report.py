"""Report pictures and tables: loss curve files, error-map colours, overlays and the score table."""

import csv

import numpy as np
from PIL import Image

from dgss.aggregate.report import (FALSE_ALARM, MISSED_VESSEL, OUTSIDE_FOV, TRUE_POSITIVE, draw_table, error_map,
                                   format_table, overlay_panel, write_loss_curve)


def test_loss_curve_writes_csv_and_png(tmp_path):
    csv_path, png_path = write_loss_curve([[0.7, 0.4, 0.2], [0.6, 0.5, 0.1]], tmp_path)
    rows = list(csv.DictReader(csv_path.open()))
    assert [(row["member"], row["epoch"]) for row in rows] == [("0", "1"), ("0", "2"), ("0", "3"),
                                                               ("1", "1"), ("1", "2"), ("1", "3")]
    assert float(rows[-1]["loss"]) == 0.1
    with Image.open(png_path) as picture:
        assert picture.format == "PNG" and picture.size == (640, 400)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["loss.csv", "loss.png"]  # no temporary left


def test_loss_curve_of_a_single_epoch(tmp_path):
    _, png_path = write_loss_curve([[0.5]], tmp_path)
    assert png_path.is_file()


def test_error_map_colours_each_outcome():
    truth = np.array([[True, True, False, False, True]])
    prediction = np.array([[True, False, True, False, True]])
    fov = np.array([[True, True, True, True, False]])
    colours = [tuple(pixel) for pixel in error_map(truth, prediction, fov)[0]]
    assert colours == [TRUE_POSITIVE, MISSED_VESSEL, FALSE_ALARM, (0, 0, 0), OUTSIDE_FOV]


def test_overlay_panel_holds_four_tiles():
    mask = np.zeros((256, 256), dtype=bool)
    panel = overlay_panel(np.zeros((256, 256, 3), dtype=np.uint8), mask, mask, ~mask, title="x")
    assert panel.width == 4 * 256 + 3 * 4 and panel.height > 256


def test_tables_align_and_format_floats():
    rows = [{"target": "A", "image": "pooled", "dice": 0.5}, {"target": "A", "image": "a1", "dice": 0.25}]
    text = format_table(rows, ("target", "image", "dice"))
    assert text.splitlines() == ["target  image   dice", "A       pooled  0.5000", "A       a1      0.2500"]
    assert draw_table(rows, ("target", "image", "dice"), title="t").width > 100
