"""The feature cache: one Zarr v3 store of many datasets x many extraction configs (importable without torch)."""

from dgss.store.entry import Entry
from dgss.store.feature_store import EntryInfo, FeatureStore
from dgss.store.schema import SCHEMA_VERSION, ArraySpec, config_key
from dgss.store.summary import summarize
from dgss.store.xarray_view import open

__all__ = [
    "SCHEMA_VERSION",
    "ArraySpec",
    "Entry",
    "EntryInfo",
    "FeatureStore",
    "config_key",
    "open",
    "summarize",
]
