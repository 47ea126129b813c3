"""The synthetic domains: deterministic, exact ground truth, realistic, and measurably different from each other."""

import numpy as np
import pytest
from scipy import ndimage

from dgss.datasets.synthetic import SYNTHETIC_DOMAINS, DomainStyle, generate_fundus
from dgss.errors import DatasetError

SIZE = 128


@pytest.fixture(scope="module")
def samples() -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    return {domain: [generate_fundus(domain, index, SIZE) for index in range(2)] for domain in SYNTHETIC_DOMAINS}


def test_domains_are_a_b_c():
    assert sorted(SYNTHETIC_DOMAINS) == ["A", "B", "C"]


def test_shapes_and_dtypes(samples):
    for image, vessel, fov in (s for group in samples.values() for s in group):
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert vessel.shape == fov.shape == (SIZE, SIZE)
        assert vessel.dtype == fov.dtype == np.bool_


def test_same_arguments_give_identical_arrays(samples):
    for a, b in zip(samples["B"][0], generate_fundus("B", 0, SIZE)):
        np.testing.assert_array_equal(a, b)


def test_different_index_gives_a_different_image(samples):
    (image0, vessel0, _), (image1, vessel1, _) = samples["A"]
    assert not np.array_equal(image0, image1)
    assert not np.array_equal(vessel0, vessel1)


def test_geometry_scales_with_size():
    """A smaller image is the same eye: its FOV is the larger one's FOV downsampled."""
    _, _, fov_small = generate_fundus("A", 3, 64)
    _, _, fov_large = generate_fundus("A", 3, 128)
    assert abs(fov_small.mean() - fov_large.mean()) < 0.01


@pytest.mark.parametrize("size", [4, 33])
def test_tiny_and_odd_sizes_work(size):
    image, vessel, fov = generate_fundus("C", 0, size)
    assert image.shape == (size, size, 3) and not (vessel & ~fov).any()


def test_vessels_lie_inside_the_fov(samples):
    for _, vessel, fov in (s for group in samples.values() for s in group):
        assert not (vessel & ~fov).any()


def test_outside_the_fov_is_black(samples):
    for image, _, fov in (s for group in samples.values() for s in group):
        assert image[~fov].max() == 0


def test_vessel_fraction_is_realistic(samples):
    for image, vessel, fov in (s for group in samples.values() for s in group):
        assert 0.06 < vessel[fov].mean() < 0.18


def test_thin_vessels_are_present(samples):
    """Some vessels are one pixel wide: eroding the mask once removes them."""
    for _, vessel, _ in (s for group in samples.values() for s in group):
        vanished = vessel & ~ndimage.binary_dilation(ndimage.binary_erosion(vessel))
        assert vanished.sum() > 0.1 * vessel.sum()


def test_vessels_are_darker_than_background_in_green(samples):
    """Compared with the background right beside them, so that illumination and the bright disc cancel out."""
    for image, vessel, fov in (s for group in samples.values() for s in group):
        green = image[..., 1].astype(float)
        beside = ndimage.binary_dilation(vessel, iterations=2) & ~vessel & fov
        assert green[vessel].mean() < 0.92 * green[beside].mean()


def test_domains_differ_in_colour_and_brightness(samples):
    means = {d: np.mean([img[fov].mean(0) for img, _, fov in group], axis=0) for d, group in samples.items()}
    for a, b in [("A", "B"), ("A", "C"), ("B", "C")]:
        assert np.abs(means[a] - means[b]).max() > 15, (a, b, means)
    assert means["B"].mean() > means["A"].mean() > means["C"].mean()  # STARE bright, CHASE_DB1 dark
    blue_share = {d: m[2] / m.sum() for d, m in means.items()}
    assert blue_share["C"] > blue_share["A"]


def test_unknown_domain_lists_the_known_ones():
    with pytest.raises(DatasetError, match="'A', 'B', 'C'"):
        generate_fundus("D", 0, SIZE)


def test_style_round_trips_through_a_dict():
    import json

    style = SYNTHETIC_DOMAINS["C"]
    assert DomainStyle.from_dict(json.loads(json.dumps(style.to_dict()))) == style
