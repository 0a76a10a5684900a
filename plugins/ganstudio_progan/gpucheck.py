"""Measure ProGAN / MSG-GAN on this machine's GPU and estimate the default schedule's time.

    python -m ganstudio_progan.gpucheck [--data DIR] [--out DIR] [--seconds 2]

1. Speed of one training step at every phase of the default 128 px schedule
   (mid-fade and stabilise), with the engine's bf16 autocast and in fp32, as
   real images per second; from those, the wall time of the whole default
   schedule on this device.
2. MSG-GAN's speed at its default settings.
3. With ``--data``: a short headless run of the real engine through every
   phase to 128 px (a compressed schedule), writing a run folder with the
   sample grid of every phase under ``--out`` to look at.

Prints one JSON object per measurement and a summary; writes ``gpucheck.json``
to ``--out`` when given.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ganstudio.core.config import resolve_config
from ganstudio.core.data import DeviceImages

from . import ganstudio_register_models, schedule_for


def _spec(model_id: str):
    spec = {s.id: s for s in ganstudio_register_models()}[model_id]
    spec.plugin = "progan"
    return spec


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bf16_ok(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def _time_steps(model, seconds: float, dtype, device) -> tuple[float, int]:
    """Run steps for about ``seconds``; return (images per second, steps)."""
    ctx = (torch.autocast(device.type, dtype=dtype) if dtype is not None
           else torch.autocast(device.type, enabled=False))
    with ctx:
        for _ in range(3):  # warm-up (cuDNN autotuning, allocator)
            model.train_step(None if getattr(model, "pyramid", None) is not None
                             else _fake_batch(model, device))
    _sync(device)
    real = None if getattr(model, "pyramid", None) is not None else _fake_batch(model, device)
    start, steps, images = time.perf_counter(), 0, 0
    with ctx:
        while True:
            n = model.batch_size
            model.train_step(real)
            steps += 1
            images += n
            if steps % 10 == 0:
                _sync(device)
                if time.perf_counter() - start >= seconds:
                    break
    _sync(device)
    return images / (time.perf_counter() - start), steps


def _fake_batch(model, device) -> torch.Tensor:
    c, h, w = model.image_shape
    return torch.rand(model.batch_size, c, h, w, device=device) * 2 - 1


def measure_progan(seconds: float, device: torch.device, overrides: dict | None = None,
                   fp32: bool = True) -> dict:
    spec = _spec("progan")
    config = resolve_config(spec.schema, overrides)
    schedule = schedule_for(config)
    res = int(config["resolution"])
    images = torch.randint(0, 256, (1024, 3, res, res), dtype=torch.uint8)
    data = DeviceImages(images, device, seed=0)
    results = {}
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", None)):
        if (dtype is not None and not _bf16_ok(device)) or (dtype is None and not fp32):
            continue
        per_phase, total_s = [], 0.0
        for phase in schedule.phases:
            torch.manual_seed(0)
            model = spec.factory(config, (3, res, res), device)
            model.attach_data(data)
            model.images_shown = phase.start + phase.images // 2  # mid-phase (alpha 0.5)
            model.phase_index = phase.index
            ips, steps = _time_steps(model, seconds, dtype, device)
            total_s += phase.images / ips
            row = {"model": "progan", "precision": precision, "phase": phase.index,
                   "resolution": phase.resolution, "fading": phase.fading,
                   "batch": phase.batch, "img_per_s": round(ips, 1), "steps_timed": steps}
            print(json.dumps(row), flush=True)
            per_phase.append(row)
            del model
        results[precision] = {"phases": per_phase, "schedule_hours": round(total_s / 3600, 3),
                              "schedule_images": schedule.total_images,
                              "schedule_steps": schedule.steps()}
        print(json.dumps({"model": "progan", "precision": precision,
                          "default_schedule_hours": round(total_s / 3600, 3)}), flush=True)
    return results


def measure_msggan(seconds: float, device: torch.device, overrides: dict | None = None,
                   fp32: bool = True) -> dict:
    spec = _spec("msggan")
    config = resolve_config(spec.schema, overrides)
    res = int(config["resolution"])
    out = {}
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", None)):
        if (dtype is not None and not _bf16_ok(device)) or (dtype is None and not fp32):
            continue
        torch.manual_seed(0)
        model = spec.factory(config, (3, res, res), device)
        ips, steps = _time_steps(model, seconds, dtype, device)
        out[precision] = {"img_per_s": round(ips, 1), "batch": config["batch_size"],
                          "steps_timed": steps}
        print(json.dumps({"model": "msggan", "precision": precision, **out[precision]}),
              flush=True)
    return out


def short_run(data: Path, out: Path, images_per_phase: int, device: str = "cuda",
              overrides: dict | None = None) -> dict:
    """The real engine through every phase to 128 px on ``data``; grids in the run folder."""
    from ganstudio.core.engine import Engine, EngineSettings
    spec = _spec("progan")
    overrides = {**(overrides or {}), "fade_images": images_per_phase,
                 "stable_images": images_per_phase}
    config = resolve_config(spec.schema, overrides)
    steps = schedule_for(config).steps()
    settings = EngineSettings(total_steps=steps, device=device, sample_every_steps=max(
        1, steps // 40), checkpoint_every_s=0, checkpoint_every_steps=max(1, steps // 2),
        log_every_s=1.0, n_samples=36)
    run_dir = out / "progan_run"
    engine = Engine(spec, run_dir, data_folder=data, overrides=overrides, settings=settings)
    engine.prepare()
    t0 = time.perf_counter()
    done = engine.run_loop()
    wall = time.perf_counter() - t0
    row = {"short_run": str(run_dir), "steps": steps, "result": type(done).__name__,
           "reason": getattr(done, "reason", getattr(done, "message", "")),
           "seconds": round(wall, 1), "images": engine.images_seen,
           "final_status": engine.model.status()}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0, help="timing per phase")
    p.add_argument("--data", type=Path, default=None, help="image folder for a short run")
    p.add_argument("--out", type=Path, default=None, help="folder for results and the run")
    p.add_argument("--images-per-phase", type=int, default=20_000)
    p.add_argument("--skip-fp32", action="store_true", help="time bf16 only")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke test)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="setting overrides for the timings (e.g. channel_max=8)")
    args = p.parse_args(argv)
    from ganstudio.core.config import parse_set_args
    overrides = parse_set_args(args.set)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report = {"device": name, "torch": torch.__version__}
    print(json.dumps(report), flush=True)
    report["progan"] = measure_progan(args.seconds, device, overrides, not args.skip_fp32)
    msg_overrides = {k: v for k, v in overrides.items()
                     if k not in ("fade_images", "stable_images", "batch_sizes")}
    report["msggan"] = measure_msggan(args.seconds, device, msg_overrides, not args.skip_fp32)
    if args.data is not None:
        out = args.out or Path("gpucheck_out")
        report["short_run"] = short_run(args.data, out, args.images_per_phase, args.device,
                                        overrides)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpucheck.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
