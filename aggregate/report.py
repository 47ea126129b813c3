"""Pictures and tables a run leaves behind: loss curve, overlays, score table (Pillow only, no matplotlib).

Every file is written under a temporary name and renamed into place, so a reader never sees half a file.
"""

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dgss.files import write_bytes_atomic
from dgss.plotting import default_font, draw_line_plot, write_png

TRUE_POSITIVE = (255, 255, 255)
MISSED_VESSEL = (255, 0, 255)
FALSE_ALARM = (0, 200, 0)
OUTSIDE_FOV = (40, 40, 40)
MIN_TILE_WIDTH = 200  # small canvases are enlarged (nearest) so the overlay stays readable


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Save dict rows as CSV with a header atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buffer.getvalue().encode())


def write_json(path: Path, value: object) -> None:
    """Save a JSON document (indented, keys in the order given) atomically."""
    write_bytes_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


def write_loss_curve(losses: Sequence[Sequence[float]], out_dir: Path) -> tuple[Path, Path]:
    """Write `loss.csv` (member, epoch, loss) and `loss.png` for an ensemble's per-epoch mean losses.

    Parameters
    ----------
    losses : (member,) sequence of (epoch,) sequences of float
    """
    out_dir = Path(out_dir)
    rows = [{"member": m, "epoch": e + 1, "loss": f"{value:.6g}"}
            for m, line in enumerate(losses) for e, value in enumerate(line)]
    csv_path, png_path = out_dir / "loss.csv", out_dir / "loss.png"
    write_csv(csv_path, rows, ("member", "epoch", "loss"))
    labels = [f"head {m}" for m in range(len(losses))]
    write_png(png_path, draw_line_plot(losses, title="training loss", xlabel="epoch", ylabel="loss",
                                       labels=labels))
    return csv_path, png_path


def error_map(truth: np.ndarray, prediction: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """Colour each pixel by outcome: hit white, miss magenta, false alarm green, outside the FOV dark grey.

    Parameters
    ----------
    truth, prediction, fov : (y, x) bool

    Returns
    -------
    (y, x, rgb) uint8
    """
    picture = np.zeros(truth.shape + (3,), dtype=np.uint8)
    picture[~fov] = OUTSIDE_FOV
    picture[fov & truth & prediction] = TRUE_POSITIVE
    picture[fov & truth & ~prediction] = MISSED_VESSEL
    picture[fov & ~truth & prediction] = FALSE_ALARM
    return picture


def overlay_panel(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, fov: np.ndarray,
                  *, title: str) -> Image.Image:
    """Image | truth | prediction | error map side by side, titled, for one image.

    Parameters
    ----------
    image : (y, x, rgb) uint8
    truth, prediction, fov : (y, x) bool
    """
    def as_rgb(mask: np.ndarray) -> np.ndarray:
        return np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=2)

    tiles = [image, as_rgb(truth), as_rgb(prediction), error_map(truth, prediction, fov)]
    names = ["image", "truth", "prediction", "errors"]
    height, width = truth.shape
    scale = max(1, -(-MIN_TILE_WIDTH // width))
    height, width = height * scale, width * scale
    gap, header = 4, 18
    panel = Image.new("RGB", (4 * width + 3 * gap, height + 3 * header), "white")
    draw = ImageDraw.Draw(panel)
    font = default_font()
    draw.text((2, 2), title, fill="black", font=font)
    for number, (tile, name) in enumerate(zip(tiles, names)):
        x = number * (width + gap)
        panel.paste(Image.fromarray(tile).resize((width, height), Image.Resampling.NEAREST), (x, header))
        draw.text((x + 2, header + height + 2), name, fill="black", font=font)
    legend = [("hit", TRUE_POSITIVE), ("missed vessel", MISSED_VESSEL), ("false alarm", FALSE_ALARM)]
    x = 3 * (width + gap) + 2
    for name, colour in legend:
        draw.rectangle((x, header * 2 + height + 4, x + 10, header * 2 + height + 14), fill=colour, outline="black")
        draw.text((x + 14, header * 2 + height + 2), name, fill="black", font=font)
        x += 20 + draw.textlength(name, font=font)
    return panel


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Rows as an aligned plain-text table; floats with 4 decimals."""
    cells = [[_format_cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)]
    lines = [list(columns)] + cells
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines)


def draw_table(rows: Sequence[dict], columns: Sequence[str], *, title: str) -> Image.Image:
    """The same table as `format_table`, drawn as a PNG-ready image (pooled rows in bold-ish dark blue)."""
    font = default_font(13)
    cells = [[_format_cell(row.get(column, "")) for column in columns] for row in rows]
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = [int(max([scratch.textlength(column, font=font)] + [scratch.textlength(line[i], font=font)
                                                                  for line in cells])) + 16
              for i, column in enumerate(columns)]
    line_height = 20
    picture = Image.new("RGB", (sum(widths) + 16, line_height * (len(rows) + 2) + 16), "white")
    draw = ImageDraw.Draw(picture)
    draw.text((8, 6), title, fill="black", font=font)
    for row_number, line in enumerate([list(columns)] + cells):
        y = 8 + line_height * (row_number + 1)
        pooled = row_number > 0 and rows[row_number - 1].get("image") == "pooled"
        colour = (0, 0, 0) if row_number == 0 or not pooled else (0, 40, 140)
        x = 8
        for width, cell in zip(widths, line):
            draw.text((x, y), cell, fill=colour, font=font)
            x += width
        if row_number == 0:
            draw.line((8, y + line_height - 3, sum(widths) + 8, y + line_height - 3), fill="black")
    return picture


def _format_cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
