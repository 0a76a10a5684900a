"""Choosing the training device and its numeric settings, with a stated reason."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    reason: str
    autocast_dtype: torch.dtype | None  # None = full fp32

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda ({torch.cuda.get_device_name(self.device)})"
        return self.device.type


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def pick_device(requested: str = "auto", *, precision: str = "auto") -> DeviceChoice:
    """Resolve ``auto|cpu|cuda|mps`` (or ``cuda:N``) to a device, or raise UserError.

    ``precision`` is ``auto``, ``fp32`` or ``bf16``. ``auto`` picks bf16
    autocast on CUDA GPUs that support it (Ampere and newer), fp32 elsewhere:
    on CPU bf16 autocast is slower than fp32 for these small convnets.
    """
    req = (requested or "auto").strip().lower()
    if req == "auto":
        if torch.cuda.is_available():
            dev, why = torch.device("cuda"), "auto: a CUDA GPU is available"
        elif _mps_available():
            dev, why = torch.device("mps"), "auto: Apple MPS is available"
        else:
            dev, why = torch.device("cpu"), "auto: no GPU found, using the CPU"
    elif req.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("device 'cuda' was requested but no CUDA GPU is available "
                            "(use --device cpu or auto)")
        try:
            dev = torch.device(req)
        except RuntimeError:
            raise UserError(f"unknown device '{requested}' (use cuda or cuda:N)") from None
        count = torch.cuda.device_count()
        if dev.type != "cuda" or (dev.index is not None and dev.index >= count):
            raise UserError(f"device '{requested}' does not exist; this machine has {count} "
                            f"CUDA GPU(s): cuda:0 to cuda:{count - 1}")
        why = "requested"
    elif req == "mps":
        if not _mps_available():
            raise UserError("device 'mps' was requested but Apple MPS is not available")
        dev, why = torch.device("mps"), "requested"
    elif req == "cpu":
        dev, why = torch.device("cpu"), "requested"
    else:
        raise UserError(f"unknown device '{requested}' (choose from {', '.join(DEVICE_CHOICES)})")

    prec = (precision or "auto").lower()
    dtype = None
    if prec == "bf16":
        if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("bf16 was requested but this GPU does not support it")
        dtype = torch.bfloat16
        why += "; bf16 autocast requested"
    elif prec == "auto" and dev.type == "cuda" and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
        why += "; bf16 autocast (supported by this GPU)"
    elif prec not in ("auto", "fp32", "bf16"):
        raise UserError(f"unknown precision '{precision}' (auto, fp32, bf16)")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return DeviceChoice(dev, why, dtype)


def memory_in_use(device: torch.device) -> int | None:
    """Bytes allocated by torch on ``device`` (None where it cannot be known cheaply)."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    if device.type == "mps" and hasattr(torch, "mps"):
        try:
            return int(torch.mps.current_allocated_memory())
        except Exception:  # pragma: no cover - depends on the platform
            return None
    return None
