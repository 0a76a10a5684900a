"""Measure the few-shot GAN's training speed and memory on this machine.

    python -m ganstudio_fewshot.speedcheck [--device cuda] [--resolutions 256,512,1024]
        [--batch 8] [--seconds 10] [--precisions bf16,fp32] [--set KEY=VALUE ...]
        [--out speed.json]

For each resolution and precision: a model at the given settings (defaults:
the model's own, batch 8), three warm-up steps, then training steps on a random
batch already on the device for about ``--seconds``; prints one JSON line with
real images per second and, on CUDA, the peak memory allocated. bf16 runs the
step inside ``torch.autocast`` as the engine does. An out-of-memory step is
reported as such, not as a crash. On a CPU this gives the same table for small
settings (``--device cpu --resolutions 64 --set g_features=8 --set d_features=8``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from ganstudio.core.config import parse_set_args, resolve_config

from .model import FewShotGAN, schema


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(resolution: int, precision: str, *, device: torch.device, batch: int,
            seconds: float, overrides: dict) -> dict:
    """One measurement: images/s (and peak memory on CUDA) of training steps."""
    cfg = resolve_config(schema(), {**overrides, "resolution": resolution, "batch_size": batch})
    out = {"resolution": resolution, "precision": precision, "batch": batch,
           "device": str(device), "g_features": cfg["g_features"],
           "d_features": cfg["d_features"]}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
           else torch.autocast(device.type, enabled=False))
    try:
        torch.manual_seed(0)
        model = FewShotGAN(cfg, (int(cfg["channels"]), resolution, resolution), device)
        real = torch.rand(batch, int(cfg["channels"]), resolution, resolution,
                          device=device) * 2 - 1
        with ctx:
            for _ in range(3):                      # warm-up: autotuning, allocator
                model.train_step(real)
            _sync(device)
            start, steps = time.perf_counter(), 0
            while True:
                model.train_step(real)
                steps += 1
                if steps % 2 == 0:
                    _sync(device)
                    if time.perf_counter() - start >= seconds:
                        break
        elapsed = time.perf_counter() - start
        out.update(steps=steps, img_per_s=round(steps * batch / elapsed, 2),
                   s_per_step=round(elapsed / steps, 4))
        if device.type == "cuda":
            out["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
    except torch.OutOfMemoryError:
        out["error"] = f"out of memory at batch {batch}"
    finally:
        model = real = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganstudio_fewshot.speedcheck",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--resolutions", default="256,512,1024")
    p.add_argument("--precisions", default="bf16,fp32")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    overrides = parse_set_args(args.set)
    results = []
    for res in (int(r) for r in args.resolutions.split(",") if r.strip()):
        for precision in (s.strip() for s in args.precisions.split(",") if s.strip()):
            if precision not in ("bf16", "fp32"):
                print(f"unknown precision {precision!r} (bf16 or fp32)", file=sys.stderr)
                return 2
            r = measure(res, precision, device=device, batch=args.batch,
                        seconds=args.seconds, overrides=overrides)
            print(json.dumps(r), flush=True)
            results.append(r)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
