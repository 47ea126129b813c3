"""The canvas outside the FOV is filled so that the FOV's border makes no edge, whatever the border's shape."""

import numpy as np
import pytest

from dgss.extract.fov_border import extend_fov

SIDE = 96


def _fov(shape: str) -> np.ndarray:
    y, x = np.mgrid[:SIDE, :SIDE]
    disc = (y - SIDE / 2) ** 2 + (x - SIDE / 2) ** 2 < (0.45 * SIDE) ** 2
    if shape == "cut flat":  # the high-resolution cameras whose FOV is cut at the top and bottom
        return disc & (abs(y - SIDE / 2) < 0.3 * SIDE)
    if shape == "notched":
        return disc & ~((x > 0.8 * SIDE) & (abs(y - SIDE / 2) < 0.06 * SIDE))
    return disc


def _fundus() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:SIDE, :SIDE]
    shading = 140 + 30 * np.sin(x / 17.0) + 20 * np.cos(y / 23.0)
    image = shading[..., None] * np.array([1.0, 0.6, 0.35]) + rng.normal(0, 3, (SIDE, SIDE, 3))
    image[abs(y - 0.35 * x - 20) < 1.5] *= 0.6  # a vessel that runs into the border
    return np.clip(image, 0, 255).astype(np.uint8)


def _border_step(image: np.ndarray, fov: np.ndarray) -> float:
    """Mean absolute difference of the green channel across the FOV's border (a pixel inside, its 4-neighbour out)."""
    green, steps = image[..., 1].astype(float), []
    for axis in (0, 1):
        for shift in (1, -1):
            outside_next = np.roll(~fov, shift, axis=axis) & fov
            steps.append(abs(green - np.roll(green, shift, axis=axis))[outside_next])
    return float(np.concatenate(steps).mean())


@pytest.mark.parametrize("shape", ["round", "cut flat", "notched"])
def test_the_fov_border_is_no_edge_after_filling(shape):
    fov = _fov(shape)
    black = np.where(fov[..., None], _fundus(), 0).astype(np.uint8)
    filled = extend_fov(black, fov)
    texture = float(abs(np.diff(_fundus()[..., 1].astype(float), axis=1))[fov[:, 1:] & fov[:, :-1]].mean())
    assert _border_step(black, fov) > 20 * texture  # black surround: a step of ~90 grey levels
    assert _border_step(filled, fov) < 3 * texture  # filled: a step like the fundus's own texture
    assert np.array_equal(filled[fov], black[fov])  # the FOV itself is untouched


def test_nothing_to_fill_leaves_the_image_as_it_is():
    image = _fundus()
    assert extend_fov(image, np.ones((SIDE, SIDE), bool)) is image
    assert extend_fov(image, np.zeros((SIDE, SIDE), bool)) is image


def test_extend_is_an_extraction_setting_that_changes_the_backbones_input(extract_backbone):
    from dgss.aggregate.data import head_image
    from dgss.extract.extractor import FeatureExtractor, make_config

    black = make_config(extract_backbone, timesteps=[3])
    extended = make_config(extract_backbone, timesteps=[3], outside_fov="extend")
    assert "outside_fov" not in black.to_dict()  # stores extracted before the setting keep their keys
    assert extended.key() != black.key() and extended.to_dict()["outside_fov"] == "extend"
    fov = _fov("cut flat")[::3, ::3]
    image = np.where(fov[..., None], _fundus()[::3, ::3], 0).astype(np.uint8)
    maps = [FeatureExtractor(extract_backbone, config).feature_maps(image, fov) for config in (black, extended)]
    assert any(not np.array_equal(maps[0][block], maps[1][block]) for block in maps[0])
    seen = head_image(image, fov, extended.to_dict()).numpy()  # the heads read the canvas the backbone saw
    assert seen[1][~fov].mean() > 0.2 and head_image(image, fov, black.to_dict()).numpy()[1][~fov].max() == 0
