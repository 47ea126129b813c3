import pytest
import torch

from dgss.extract.bands import haar_merge, haar_split, split_bands
from dgss.store.schema import band_names


def test_round_trip_and_energy():
    maps = torch.randn(3, 5, 8, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bands = haar_split(maps)
    assert bands.shape == (3, 5, 4, 4, 6)
    assert torch.allclose(haar_merge(bands), maps, atol=1e-6)
    assert torch.allclose((bands**2).sum(), (maps**2).sum())


def test_constant_map_has_only_low_band():
    bands = haar_split(torch.full((4, 4), 3.0))
    assert torch.equal(bands[0], torch.full((2, 2), 6.0))
    assert torch.equal(bands[1:], torch.zeros(3, 2, 2))


def test_detail_bands_see_their_edges():
    rows = torch.tensor([[1.0], [-1.0]]).repeat(1, 2)  # changes across rows: a horizontal edge
    assert haar_split(rows)[:, 0, 0].tolist() == [0.0, 2.0, 0.0, 0.0]


def test_none_keeps_raw_and_names():
    maps = torch.randn(2, 3, 4, 4)
    assert torch.equal(split_bands(maps, "none")[:, :, 0], maps)
    assert band_names("haar") == ("LL", "LH", "HL", "HH") and band_names("none") == ("raw",)


def test_odd_size_refused():
    with pytest.raises(ValueError, match="even"):
        haar_split(torch.zeros(3, 5))
