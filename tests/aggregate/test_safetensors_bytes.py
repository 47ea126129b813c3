"""Head files have one byte layout per content, although the safetensors writer orders its header's metadata
differently from call to call."""

import torch
from safetensors.torch import load, save
from torch import nn

from dgss.aggregate.run import write_head
from dgss.aggregate.safetensors_bytes import canonical_safetensors


def test_the_canonical_header_is_the_same_for_every_save_and_loads_the_same_tensors():
    tensors = {"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.ones(3, dtype=torch.float16)}
    metadata = {"head": "tsfreqagg", "member": "3", "format": "pt", "z": "last", "a": "first"}
    saved = [save(tensors, metadata=metadata) for _ in range(12)]
    canonical = {canonical_safetensors(data) for data in saved}
    assert len(canonical) == 1
    (data,) = canonical
    assert int.from_bytes(data[:8], "little") % 8 == 0 and data[8:9] == b"{"  # the data stays aligned
    loaded = load(data)
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[name], tensors[name]) for name in tensors)


def test_a_head_written_twice_is_the_same_bytes(tmp_path):
    head = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    contents = set()
    for attempt in range(6):
        write_head(tmp_path, f"head_{attempt}.safetensors", head, "unet", 0)
        contents.add((tmp_path / f"head_{attempt}.safetensors").read_bytes())
    assert len(contents) == 1
