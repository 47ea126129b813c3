"""CacheSpec from entry config + attrs, its derived shapes, round trip and errors."""

import json

import pytest

from dgss.aggregate.spec import CacheSpec
from dgss.errors import DgssError

BLOCKS = [{"name": "up_blocks.0", "channels": 8, "height": 8, "width": 8},
          {"name": "up_blocks.1", "channels": 4, "height": 8, "width": 8},
          {"name": "up_blocks.2", "channels": 6, "height": 16, "width": 16},
          {"name": "up_blocks.3", "channels": 2, "height": 32, "width": 32}]
LEVELS = {"coarse": ["up_blocks.0", "up_blocks.1"], "middle": ["up_blocks.2"], "fine": ["up_blocks.3"]}


def _spec(bands="haar", levels=LEVELS, blocks=BLOCKS):
    config = {"blocks": [b["name"] for b in blocks], "timesteps": [50, 150], "bands": bands, "canvas_size": 64,
              "seed": 0}
    return CacheSpec.from_entry_attrs(config, {"blocks": blocks, "levels": levels, "model": "x"})


def test_levels_and_shapes_haar():
    spec = _spec()
    assert spec.levels == ("coarse", "middle", "fine")
    assert spec.level_channels("coarse") == 12
    assert spec.level_size("coarse") == (4, 4)
    assert spec.band_names == ("LL", "LH", "HL", "HH")
    assert spec.feature_shape(spec.blocks[2]) == (2, 4, 6, 8, 8)
    assert spec.feature_key(spec.blocks[2]) == "features/up_blocks.2"


def test_none_bands_keep_full_maps_and_empty_levels_are_skipped():
    spec = _spec("none", levels={"coarse": ["up_blocks.0", "up_blocks.1"], "middle": [],
                                 "fine": ["up_blocks.2"]}, blocks=BLOCKS[:3])
    assert spec.levels == ("coarse", "fine")
    assert spec.feature_shape(spec.blocks[0]) == (2, 1, 8, 8, 8)


def test_round_trip_through_json():
    spec = _spec()
    assert CacheSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize("case", ["missing_levels", "unassigned", "mixed_sizes", "order", "odd_haar", "bands",
                                  "unknown_level", "twice", "only_in_level"])
def test_invalid_entries_raise(case):
    blocks, levels, bands, attrs_drop = BLOCKS, dict(LEVELS), "haar", False
    if case == "missing_levels":
        attrs_drop = True
    elif case == "unassigned":
        levels["fine"] = []
    elif case == "mixed_sizes":
        levels = {"coarse": ["up_blocks.0", "up_blocks.2"], "fine": ["up_blocks.1", "up_blocks.3"]}
    elif case == "order":
        levels = {"coarse": ["up_blocks.3"], "middle": ["up_blocks.2"], "fine": ["up_blocks.0", "up_blocks.1"]}
    elif case == "odd_haar":
        blocks = [{**BLOCKS[0], "height": 7}] + BLOCKS[1:]
    elif case == "bands":
        bands = "dwt"
    elif case == "unknown_level":
        levels["extra"] = levels.pop("fine")
    elif case == "twice":
        levels["middle"] = ["up_blocks.2", "up_blocks.3"]
    elif case == "only_in_level":
        levels["fine"] = ["up_blocks.3", "up_blocks.9"]
    config = {"timesteps": [1], "bands": bands, "canvas_size": 32}
    attrs = {"blocks": blocks} if attrs_drop else {"blocks": blocks, "levels": levels}
    with pytest.raises(DgssError):
        CacheSpec.from_entry_attrs(config, attrs)
