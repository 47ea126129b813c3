import numpy as np
import pytest

from dgss.store.geometry import Geometry, resize_bilinear


def test_fit_keeps_aspect_and_centres():
    geometry = Geometry.fit((100, 140), (10, 20, 50, 100), 64)
    assert (geometry.scaled_height, geometry.scaled_width) == (32, 64)
    assert (geometry.pad_top, geometry.pad_left) == (16, 0)
    assert geometry.native_shape == (100, 140)


def test_array_round_trip():
    geometry = Geometry.fit((584, 565), (5, 0, 570, 565), 512)
    vector = geometry.to_array()
    assert vector.dtype == np.int64 and vector.shape == (11,)
    assert Geometry.from_array(vector) == geometry
    with pytest.raises(ValueError, match="11 values"):
        Geometry.from_array(vector[:5])


def test_to_native_places_crop_and_zeros_outside():
    geometry = Geometry.fit((40, 50), (10, 5, 20, 20), 20)  # crop box at scale 1, no padding
    canvas = np.arange(400, dtype=np.float32).reshape(20, 20)
    native = geometry.to_native(canvas)
    assert native.shape == (40, 50) and native.dtype == np.float32
    assert np.array_equal(native[10:30, 5:25], canvas)
    assert native[:10].sum() == 0 and native[:, 25:].sum() == 0
    assert geometry.to_native(canvas > 200).dtype == bool


def test_resize_bilinear_identity_and_constant():
    values = np.random.default_rng(0).random((7, 9)).astype(np.float32)
    assert np.allclose(resize_bilinear(values, (7, 9)), values)
    assert np.allclose(resize_bilinear(np.full((3, 4), 2.0, np.float32), (10, 5)), 2.0)
