"""Choosing the training device and its numeric settings, with a stated reason."""
from __future__ import annotations

import os
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
    def precision(self) -> str:
        """``fp32``, or the autocast dtype's short name (``bf16``)."""
        if self.autocast_dtype is None:
            return "fp32"
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.autocast_dtype,
                                                                   str(self.autocast_dtype))

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda ({torch.cuda.get_device_name(self.device)})"
        return self.device.type


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware tiles (Intel AMX).

    There bf16 autocast roughly halves a GAN step (DCGAN 64 px, batch 128,
    2 cores: 100 -> 218 images/s in ``ganstudio bench``; 1.1x at the
    studio's 32 px CPU demo settings), with the same KID on a test set. CPUs
    without AMX convert bf16 in software or in narrower units, where it was
    not measured to pay, so they keep fp32. ``GANSTUDIO_CPU_BF16=0`` (or
    ``1``) overrides the detection.
    """
    forced = os.environ.get("GANSTUDIO_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # pragma: no cover - depends on the torch build
        return False


def pick_device(requested: str = "auto", *, precision: str = "auto") -> DeviceChoice:
    """Resolve ``auto|cpu|cuda|mps`` (or ``cuda:N``) to a device, or raise UserError.

    ``precision`` is ``auto``, ``fp32`` or ``bf16``. ``auto`` picks bf16
    autocast on CUDA GPUs that support it (Ampere and newer) and on CPUs with
    AMX bf16 units (see :func:`cpu_has_fast_bf16`), fp32 elsewhere.
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
    elif prec == "auto" and dev.type == "cpu" and cpu_has_fast_bf16():
        dtype = torch.bfloat16
        why += "; bf16 autocast (this CPU has AMX bf16 units)"
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


def cuda_device_count() -> int:
    """How many CUDA GPUs this process can use (0 without CUDA)."""
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver: no GPU to offer
        return 0
