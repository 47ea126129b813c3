"""The feature cache: one Zarr v3 store of many datasets x many extraction configs (importable without torch).

Names are imported on first use (PEP 562), so `dgss.store.geometry` and the CLI's `--help` do not pay for zarr,
dask and xarray.
"""

import importlib
from typing import Any

_EXPORTS = {
    "Entry": "dgss.store.entry",
    "EntryInfo": "dgss.store.feature_store",
    "FeatureStore": "dgss.store.feature_store",
    "SCHEMA_VERSION": "dgss.store.schema",
    "ArraySpec": "dgss.store.schema",
    "config_key": "dgss.store.schema",
    "store_location": "dgss.store.feature_store",
    "summarize": "dgss.store.summary",
    "open": "dgss.store.xarray_view",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dgss.store' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
