"""The extract -> aggregate contract: the feature layout an entry's attrs record, written and read by one class."""

import pytest

from dgss.errors import StoreError
from dgss.store.schema import BlockLayout, EntryLayout, band_names, banded_size

BLOCKS = (BlockLayout(name="up_blocks.0", channels=32, height=64, width=64),
          BlockLayout(name="up_blocks.1", channels=16, height=128, width=128))
LEVELS = {"coarse": ["up_blocks.0"], "middle": [], "fine": ["up_blocks.1"]}


def test_the_attrs_keep_the_format_existing_stores_hold():
    attrs = EntryLayout(blocks=BLOCKS, levels=LEVELS).to_attrs()
    assert attrs == {"blocks": [{"name": "up_blocks.0", "channels": 32, "height": 64, "width": 64},
                                {"name": "up_blocks.1", "channels": 16, "height": 128, "width": 128}],
                     "levels": LEVELS}
    layout = EntryLayout.from_attrs(attrs)
    assert layout.blocks == BLOCKS and layout.level_of("up_blocks.1") == "fine"
    assert layout.to_attrs() == attrs


def test_a_block_in_no_level_is_refused():
    attrs = EntryLayout(blocks=BLOCKS, levels={"coarse": ["up_blocks.0"]}).to_attrs()
    with pytest.raises(StoreError, match="'up_blocks.1' is in no level"):
        EntryLayout.from_attrs(attrs)


def test_haar_bands_halve_the_map_and_raw_maps_keep_it():
    assert band_names("haar") == ("LL", "LH", "HL", "HH") and band_names("none") == ("raw",)
    assert banded_size(128, "haar") == 64 and banded_size(128, "none") == 128
