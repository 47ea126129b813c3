"""Random head inputs for a cache spec, shared by the head and window tests."""

import torch

from dgss.aggregate.spec import CacheSpec


def random_batch(spec: CacheSpec, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Normal features of every block of `spec` and a uniform image, `size` samples over the whole canvas."""
    generator = torch.Generator().manual_seed(seed)
    batch = {spec.feature_key(b): torch.randn(size, *spec.feature_shape(b), generator=generator)
             for b in spec.blocks}
    batch["image"] = torch.rand(size, 3, spec.canvas_size, spec.canvas_size, generator=generator)
    return batch
