"""How long a style job takes on a device, and defaults that finish soon enough there.

The cost of both style jobs is dominated by VGG-19 passes, which grow with
the number of pixels. :func:`measure_vgg_speed` times one forward + backward
pass of the job's VGG layers on two small pictures on the device (random
weights of the same shapes: the arithmetic, and so the time, does not depend
on the values), once per device and layer set, and fits a fixed cost per pass
plus a cost per megapixel; the estimates scale that to the job's pictures.
On a CPU the defaults are smaller (``CPU_DEFAULTS``): the paper-sized 512 px
and 300 iterations take tens of minutes there.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .gatys import scale_sizes, split_iterations

#: Style transfer settings on a CPU (the schema's defaults suit a GPU).
CPU_DEFAULTS = {"size": 256, "iterations": 100}
#: Fast-style training on a CPU: smaller crops and network, fewer steps.
FAST_CPU_DEFAULTS = {"resolution": 128, "width": 16, "batch_size": 2}
FAST_CPU_STEPS = 2_000
FAST_GPU_STEPS = 20_000
CALIBRATION_SIDES = (64, 128)


@dataclass(frozen=True)
class Speed:
    """Seconds of one VGG forward + backward pass: ``overhead_s + per_mpix_s * megapixels``."""

    overhead_s: float
    per_mpix_s: float

    def seconds(self, mpix: float) -> float:
        return self.overhead_s + self.per_mpix_s * mpix


_cache: dict[tuple[str, tuple[str, ...]], Speed] = {}
_cache_lock = threading.Lock()


def on_cpu(device: torch.device | str) -> bool:
    return torch.device(device).type == "cpu"


def gatys_defaults(device: torch.device | str) -> dict[str, Any]:
    """Settings to put in the form for ``device`` (empty: the schema's own)."""
    return dict(CPU_DEFAULTS) if on_cpu(device) else {}


def fast_defaults(device: torch.device | str) -> tuple[dict[str, Any], int]:
    """(settings, training steps) for ``device``."""
    if on_cpu(device):
        return dict(FAST_CPU_DEFAULTS), FAST_CPU_STEPS
    return {}, FAST_GPU_STEPS


def measure_vgg_speed(device: torch.device | str, layers: Sequence[str],
                      sides: Sequence[int] = CALIBRATION_SIDES, repeats: int = 2) -> Speed:
    """The :class:`Speed` of VGG passes up to ``layers`` on ``device`` (cached per device
    and layers; the first call takes about a second on a CPU)."""
    from .vgg import VGGFeatures

    device = torch.device(device)
    key = (str(device), tuple(sorted(set(layers))))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    vgg = VGGFeatures(list(layers)).to(device)

    def timed(side: int) -> float:
        x = torch.rand(1, 3, side, side, device=device, requires_grad=True)

        def once() -> None:
            feats = vgg(x)
            total = sum(f.float().square().mean() for f in feats.values())
            total.backward()
            x.grad = None

        once()  # warm-up: allocation and kernel selection are not the steady cost
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            once()
        _sync(device)
        return (time.perf_counter() - t0) / repeats

    (s0, t0), (s1, t1) = [(side * side / 1e6, timed(side)) for side in sides[:2]]
    per_mpix = max((t1 - t0) / (s1 - s0), t1 / s1 * 0.25)
    speed = Speed(max(0.0, t1 - per_mpix * s1), per_mpix)
    with _cache_lock:
        _cache[key] = speed
    return speed


def gatys_seconds(config: dict[str, Any], speed: Speed, aspect: float = 0.75) -> float:
    """Estimated seconds of an optimisation with ``config`` (its size, scales, iterations,
    optimizer) at ``speed``; ``aspect`` = short / long side of the content picture."""
    sizes = scale_sizes(int(config["size"]), int(config.get("scales", 0) or 0))
    budgets = split_iterations(int(config["iterations"]), len(sizes))
    # a strong-Wolfe line search evaluates the loss about twice per iteration
    passes = 2.0 if config.get("optimizer", "lbfgs") == "lbfgs" and config.get("line_search") \
        else 1.0
    total = 0.0
    for side, n in zip(sizes, budgets):
        mpix = side * max(1, round(side * aspect)) / 1e6
        total += n * passes * speed.seconds(mpix)
    return total


def fast_seconds(config: dict[str, Any], steps: int, speed: Speed) -> float:
    """Estimated seconds of training a fast-style network: per step and picture, one VGG
    pass without gradients on the content, one with on the result, and the network
    itself (a few times cheaper than VGG at the default width; counted as half a pass)."""
    res = int(config["resolution"])
    mpix = res * res / 1e6
    batch_mpix = int(config["batch_size"]) * mpix
    passes = 1 / 3 + 1.0 + 0.5 * int(config.get("width", 32)) / 32
    return steps * passes * speed.seconds(batch_mpix)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
