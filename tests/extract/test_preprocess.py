import numpy as np
import torch

from dgss.extract.preprocess import (
    cut_tiles,
    fov_box,
    image_tensor,
    stitch_tiles,
    tile_starts,
    to_canvas,
)


def _synthetic(shape=(90, 120), radius=40, width=4):
    """A disc FOV off-centre with a few straight vessels of ``width`` pixels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    fov = (yy - 45) ** 2 + (xx - 65) ** 2 <= radius**2
    vessel = np.zeros(shape, dtype=bool)
    vessel[40 : 40 + width, 30:100] = True
    vessel[10:80, 60 : 60 + width] = True
    vessel &= fov
    image = np.zeros((*shape, 3), dtype=np.uint8)
    image[fov] = (180, 90, 40)
    image[vessel] = (90, 40, 20)
    return image, vessel, fov


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_fov_box():
    _, _, fov = _synthetic()
    assert fov_box(fov) == (5, 25, 81, 81)
    assert fov_box(np.zeros((4, 6), dtype=bool)) == (0, 0, 4, 6)


def test_canvas_round_trip_recovers_native_masks():
    image, vessel, fov = _synthetic()
    for canvas_size in (64, 128):  # down- and upscaling
        canvas = to_canvas(image, vessel, fov, canvas_size=canvas_size)
        assert canvas.image.shape == (canvas_size, canvas_size, 3) and canvas.image.dtype == np.uint8
        assert canvas.vessel.dtype == bool and canvas.fov.shape == (canvas_size, canvas_size)
        assert _iou(canvas.geometry.to_native(canvas.vessel), vessel) > 0.9
        assert _iou(canvas.geometry.to_native(canvas.fov), fov) > 0.95


def test_canvas_without_fov_crop_pads_the_short_side():
    image, vessel, fov = _synthetic()
    canvas = to_canvas(image, vessel, fov, canvas_size=60, fov_crop=False)
    assert (canvas.geometry.scaled_height, canvas.geometry.scaled_width) == (45, 60)
    assert not canvas.image[:7].any() and not canvas.image[-8:].any()


def test_image_tensor_range():
    tensor = image_tensor(np.array([[[0, 255, 127]]], dtype=np.uint8))
    assert tensor.shape == (1, 3, 1, 1)
    assert tensor.flatten().tolist()[:2] == [-1.0, 1.0]


def test_tile_starts_cover_canvas():
    assert tile_starts(64, 64, 16, 8) == [0]
    starts = tile_starts(96, 64, 16, 8)
    assert starts == [0, 32]
    starts = tile_starts(200, 64, 16, 8)
    assert starts[0] == 0 and starts[-1] == 136 and all(s % 8 == 0 for s in starts)
    assert all(b - a <= 64 - 8 for a, b in zip(starts, starts[1:]))


def test_stitch_tiles_reassembles_a_smooth_map():
    stride, input_size, canvas = 2, 32, 48
    starts = tile_starts(canvas, input_size, 16, stride)
    full = torch.arange(24 * 24, dtype=torch.float32).reshape(1, 1, 24, 24)  # map at stride 2
    image = torch.zeros(1, 3, canvas, canvas)
    assert cut_tiles(image, starts, input_size).shape == (len(starts) ** 2, 3, 32, 32)
    tiles = torch.cat([full[..., t // 2 : t // 2 + 16, l // 2 : l // 2 + 16] for t in starts for l in starts])
    stitched = stitch_tiles(tiles.unsqueeze(1), starts, canvas_map_size=24, stride=stride, overlap=16)
    assert torch.allclose(stitched, full[0], atol=1e-4)
