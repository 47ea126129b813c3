"""What a store holds, as plain dicts: the numbers `dgss info` prints."""

from typing import Any

from dgss.store.feature_store import FeatureStore, StoreLike


def summarize(path: StoreLike) -> list[dict[str, Any]]:
    """One dict per entry: dataset, key, config (its parameters), images_done, images_labelled (done images with a
    vessel label), images_damaged (done images with a chunk file missing; `dgss verify` finds the rest),
    images_total, bytes_stored (bytes stored under the entry, on disk or in the object store), bytes_raw
    (uncompressed bytes of the done images) and compression_ratio (bytes_raw / bytes_stored). Raises StoreError
    when `path` is not a dgss store."""
    return [
        {
            "dataset": info.dataset,
            "key": info.key,
            "config": info.config,
            "images_done": info.n_done,
            "images_labelled": info.n_labelled,
            "images_damaged": info.n_damaged,
            "images_total": info.n_total,
            "bytes_stored": info.bytes_stored,
            "bytes_raw": info.bytes_raw,
            "compression_ratio": info.compression_ratio,
        }
        for info in FeatureStore(path, create=False).entries()
    ]
