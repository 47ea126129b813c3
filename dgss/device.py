"""Check a `--device` before any work, so a machine without the accelerator gets one line instead of a traceback
from deep inside torch (or a store created for nothing)."""

from __future__ import annotations

from dgss.errors import DeviceError


def check_device(device: str) -> str:
    """`device` when this torch can use it; DeviceError naming it and the fix otherwise.

    Parameters
    ----------
    device
        A torch device string: cpu, cuda, cuda:N or mps.
    """
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"device {device!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        _check_cuda(device, parsed.index)
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {device!r}: this machine or torch build has no Apple MPS; use --device cpu")
    return device


def _check_cuda(device: str, index: int | None) -> None:
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise DeviceError(
            f"device {device!r}: torch {torch.__version__} ({build}) sees no CUDA GPU here; use --device cpu, or "
            "run on a machine with an NVIDIA GPU and a CUDA build of torch"
        )
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise DeviceError(f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
