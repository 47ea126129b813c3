"""Plain pictures drawn with Pillow (no matplotlib): the line plot and PNG writing that backbone training and head
training both use for their loss curves."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dgss.files import write_bytes_atomic

SERIES_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                  (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def write_png(path: Path, picture: Image.Image) -> None:
    """Save a PIL image as PNG atomically."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def default_font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at `size` px: the same on every machine, nothing to install."""
    return ImageFont.load_default(size=size)


def draw_line_plot(series: Sequence[Sequence[float]], *, title: str, xlabel: str, ylabel: str,
                   labels: Sequence[str] | None = None, size: tuple[int, int] = (640, 400)) -> Image.Image:
    """A plain line plot of one or more series against 1..n, with min/max ticks and a legend.

    Parameters
    ----------
    series : sequence of (point,) sequences of float
        One line each; x runs from 1 to the series length.
    """
    width, height = size
    left, right, top, bottom = 70, 20, 30, 45
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    font = default_font()
    values = np.concatenate([np.asarray(line, dtype=np.float64) for line in series if len(line)] or [np.zeros(1)])
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    longest = max((len(line) for line in series), default=1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_xy(index: int, value: float) -> tuple[float, float]:
        x = left + (index / max(longest - 1, 1)) * plot_w
        y = top + (1 - (value - low) / (high - low)) * plot_h
        return x, y

    draw.rectangle((left, top, left + plot_w, top + plot_h), outline="black")
    draw.text((width / 2, 8), title, fill="black", font=font, anchor="mt")
    draw.text((width / 2, height - 8), xlabel, fill="black", font=font, anchor="mb")
    draw.text((left, top - 4), ylabel, fill="black", font=font, anchor="lb")
    for value in (low, high):
        _, y = to_xy(0, value)
        draw.text((left - 4, y), f"{value:.3g}", fill="black", font=font, anchor="rm")
    for index in (0, longest - 1):
        x, _ = to_xy(index, low)
        draw.text((x, top + plot_h + 4), str(index + 1), fill="black", font=font, anchor="mt")
    for number, line in enumerate(series):
        colour = SERIES_COLOURS[number % len(SERIES_COLOURS)]
        points = [to_xy(i, float(v)) for i, v in enumerate(line)]
        if len(points) == 1:
            x, y = points[0]
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        elif points:
            draw.line(points, fill=colour, width=2)
        if labels is not None:
            draw.text((left + plot_w - 4, top + 4 + 14 * number), labels[number], fill=colour, font=font,
                      anchor="ra")
    return picture
