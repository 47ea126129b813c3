"""Bit rounding: bounded relative error, exact at 10 bits, better compression, no overflow to infinity."""

import numcodecs
import numpy as np
import pytest

from dgss.extract.precision import round_mantissa


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(50_000) * np.exp(rng.uniform(-6, 6, 50_000))).astype(np.float16)


@pytest.mark.parametrize("bits", [1, 3, 5, 8])
def test_relative_error_is_at_most_half_the_last_kept_bit(values, bits):
    rounded = round_mantissa(values, bits)
    normal = np.abs(values) >= np.finfo(np.float16).smallest_normal
    error = np.abs(rounded[normal].astype(np.float64) / values[normal].astype(np.float64) - 1)
    assert rounded.dtype == np.float16 and error.max() <= 2.0 ** -(bits + 1)
    assert np.array_equal(np.sign(rounded[normal]), np.sign(values[normal]))


def test_ten_bits_keep_every_value(values):
    assert np.array_equal(round_mantissa(values, 10).view(np.uint16), values.view(np.uint16))


def test_rounding_is_to_the_nearest_kept_value():
    # 1 + 3/1024 rounds up to 1 + 4/1024 at 8 bits (unit 4/1024), 1 + 1/1024 rounds down to 1.
    assert round_mantissa(np.float16([1 + 3 / 1024, 1 + 1 / 1024]), 8).tolist() == [1 + 4 / 1024, 1.0]


def test_the_largest_float16_does_not_round_to_infinity():
    assert round_mantissa(np.float16([65504.0, -65504.0]), 2).tolist() == [65504.0, -65504.0]


def test_fewer_bits_compress_better(values):
    smooth = np.cumsum(values.astype(np.float32) * 1e-3).astype(np.float16)
    codec = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    sizes = [len(codec.encode(round_mantissa(smooth, bits))) for bits in (10, 7, 4)]
    assert sizes[0] > sizes[1] > sizes[2]


def test_bits_out_of_range_are_refused(values):
    with pytest.raises(ValueError, match="1..10"):
        round_mantissa(values, 0)
