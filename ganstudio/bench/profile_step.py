"""Where a training step's time goes: host work, device kernels, and how many launches.

``python -m ganstudio.bench.profile_step --device cuda`` trains the benchmark's
DCGAN (the ``classic`` preset, 64 px, batch 128, random images already on the
device) for a few warm-up steps, then profiles a few more with
``torch.profiler`` and prints, per step and for each precision asked for:

* wall time (between device syncs) and images/s, first without the profiler;
* under the profiler: wall time, and host time (CPU time of the training
  thread spent issuing work);
* device time: the sum of the GPU kernels' own times, and the number of kernel
  launches;
* the number of aten operations one step dispatches;
* the operators that cost the most device (or, on a CPU, host) time.

When wall time is close to host time and well above device time, the step is
bound by launching work (more, smaller kernels than the GPU needs time for):
the case that capturing the step as a CUDA graph addresses. When device time
is close to wall time, the kernels themselves are the cost.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch


def _step_fn(model: Any, real: torch.Tensor, autocast_dtype: torch.dtype | None):
    def step() -> None:
        if autocast_dtype is None:
            model.train_step(real)
        else:
            with torch.autocast(real.device.type, dtype=autocast_dtype):
                model.train_step(real)
    return step


def _count_operations(step: Any) -> int:
    """How many aten operations one step dispatches (each one a kernel or more on a GPU)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    with Count():
        step()
    return Count.calls


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_step(*, device: str = "auto", precision: str = "fp32", resolution: int = 64,
                 batch_size: int = 128, features: int = 64, warmup: int = 10, steps: int = 10,
                 top: int = 12, channels_last: bool = False) -> dict[str, Any]:
    """Profile ``steps`` DCGAN training steps after ``warmup`` steps; return the figures."""
    from torch.profiler import ProfilerActivity, profile

    from ganstudio.core.config import resolve_config
    from ganstudio.core.devices import pick_device
    from ganstudio.plugins import get_plugin_manager

    from .reference import reference_model

    choice = pick_device(device, precision=precision)
    dev = choice.device
    pm = get_plugin_manager()
    ref = reference_model(pm)
    spec = pm.get_model(ref.model_id)
    settings: dict[str, Any] = dict(ref.settings(resolution=resolution, batch_size=batch_size,
                                                 features=features,
                                                 channels_last=bool(channels_last)))
    config = resolve_config(spec.schema, settings)
    torch.manual_seed(0)
    model = spec.factory(config, (3, resolution, resolution), dev)
    real = torch.rand(batch_size, 3, resolution, resolution, device=dev) * 2 - 1
    step = _step_fn(model, real, choice.autocast_dtype)

    for _ in range(max(1, warmup)):
        step()
    _sync(dev)
    n = max(1, steps)
    # The same steps without the profiler first: its own bookkeeping slows small steps.
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    _sync(dev)
    plain_s = time.perf_counter() - t0
    ops = _count_operations(step)
    _sync(dev)
    activities = [ProfilerActivity.CPU]
    if dev.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        host0 = time.thread_time()
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        host_s = time.thread_time() - host0
        _sync(dev)
        wall_s = time.perf_counter() - t0

    events = prof.key_averages()

    def device_us_of(e: Any) -> float:   # the name changed across torch versions
        return float(getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0.0)) or 0.0)

    kernels = [e for e in prof.events() if "CUDA" in str(getattr(e, "device_type", ""))
               and device_us_of(e) > 0]
    device_us = sum(device_us_of(e) for e in kernels) if dev.type == "cuda" else 0.0
    sort_key = "self_cpu_time_total"
    if dev.type == "cuda":
        sample = next(iter(events), None)
        sort_key = ("self_device_time_total" if hasattr(sample, "self_device_time_total")
                    else "self_cuda_time_total")
    rows = []
    for e in sorted(events, key=lambda e: getattr(e, sort_key, 0.0), reverse=True)[:top]:
        rows.append({"name": e.key, "calls_per_step": e.count / n,
                     "self_ms_per_step": getattr(e, sort_key, 0.0) / 1000.0 / n})
    return {
        "device": choice.name, "precision": choice.precision,
        "resolution": resolution, "batch_size": batch_size, "features": features,
        "channels_last": bool(channels_last), "steps": n,
        "wall_ms_per_step": 1000.0 * plain_s / n,
        "images_per_s": batch_size * n / plain_s if plain_s > 0 else 0.0,
        "profiled_wall_ms_per_step": 1000.0 * wall_s / n,
        "host_ms_per_step": 1000.0 * host_s / n,
        "device_ms_per_step": device_us / 1000.0 / n if dev.type == "cuda" else None,
        "aten_operations_per_step": ops,
        "kernel_launches_per_step": len(kernels) / n if dev.type == "cuda" else None,
        "top": rows,
    }


def _print(r: dict[str, Any]) -> None:
    dev_part = ("" if r["device_ms_per_step"] is None else
                f"; device {r['device_ms_per_step']:.2f} ms in "
                f"{r['kernel_launches_per_step']:.0f} kernels")
    print(f"{r['device']} {r['precision']} b{r['batch_size']}"
          f"{' channels_last' if r['channels_last'] else ''}: "
          f"{r['images_per_s']:,.1f} images/s; per step: wall {r['wall_ms_per_step']:.2f} ms; "
          f"under the profiler: wall {r['profiled_wall_ms_per_step']:.2f} ms, "
          f"host {r['host_ms_per_step']:.2f} ms{dev_part}; "
          f"{r['aten_operations_per_step']} aten operations")
    for row in r["top"]:
        print(f"    {row['self_ms_per_step']:8.3f} ms  x{row['calls_per_step']:<6.1f} {row['name']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganstudio.bench.profile_step",
                                description="Profile the benchmark's DCGAN training step.")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32,bf16",
                   help="comma list of fp32, bf16, auto (default fp32,bf16)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    from ganstudio.core.errors import UserError
    results = []
    try:
        for prec in [x.strip() for x in args.precision.split(",") if x.strip()]:
            r = profile_step(device=args.device, precision=prec, resolution=args.resolution,
                             batch_size=args.batch, features=args.features, warmup=args.warmup,
                             steps=args.steps, top=args.top, channels_last=args.channels_last)
            _print(r)
            results.append(r)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
