"""One small error hierarchy for all of dgss, one class per thing a user can get wrong.

Every error a user can cause is a :class:`DgssError`; the CLI prints its message on one line and exits non-zero.
Messages name the file or value at fault and the fix. Nothing else in dgss is caught broadly.

    DgssError
    ├── DatasetError          a dataset, or one of its files
    ├── ModelError            a backbone, or a block or timestep of it
    ├── DeviceError           a --device
    ├── StoreError            a feature store, or an entry of it
    │   ├── DamagedImageError     one image's chunks
    │   └── ConfigMismatchError   cached features made with another config than the one asked for
    └── RunError              a run folder: heads trained by fit-head, or a backbone trained by train-diffusion
        └── OtherSettingsError    a fit-head run there was trained (or began) with other settings than asked for
"""


class DgssError(Exception):
    """Base of every error dgss raises on purpose; the message is meant for the user as it is."""


class DatasetError(DgssError, ValueError):
    """A dataset is unknown, missing, or has a file that is unreadable or does not match its partner."""


class ModelError(DgssError, ValueError):
    """A backbone path is not a diffusers model, or a block or timestep does not exist in it."""


class DeviceError(DgssError, ValueError):
    """A torch device (`--device`) is not one this machine or torch build can use."""


class StoreError(DgssError, ValueError):
    """A feature store is missing, not a store, written by another schema version, or lacks an entry."""


class DamagedImageError(StoreError):
    """An image marked done has a chunk that is missing, does not decode, or fails its checksum.

    `image_id` and `array` say what to recompute; `reason` says what is wrong, without the fix (for `dgss verify`).
    """

    def __init__(self, message: str, *, image_id: str, array: str, reason: str) -> None:
        super().__init__(message)
        self.image_id = image_id
        self.array = array
        self.reason = reason


class ConfigMismatchError(StoreError):
    """Cached features were made with another config than the one they are used with (an entry extracted again
    with other settings, a target under another key than the run's, a batch without the head's blocks); names the
    field that differs."""


class RunError(DgssError, ValueError):
    """A run folder (fit-head's heads, train-diffusion's backbone) is missing files, is corrupt, is in the way, or
    cannot be continued with the settings given (naming the setting that differs)."""


class OtherSettingsError(RunError):
    """A run folder holds a fit-head run, stopped or finished, trained with other settings than the ones asked for
    (options, a default that has changed since, sources, key); names the settings that differ."""
