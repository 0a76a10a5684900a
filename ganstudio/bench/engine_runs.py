"""The studio engine under the stopwatch: dataset preparation and training throughput.

Throughput is read from the engine's own Metrics events: each one is emitted
right after the engine brought its accumulated losses to the host (a device
sync), so the wall-clock time of two Metrics events brackets finished work.
The first events (``warmup_steps``: cuDNN autotuning, allocator growth) are
left out. Everything else runs as in a normal headless run: metrics every
100 ms, a sample grid every 5 s, the run folder written; only the balance
alarm and KID/FID measures are off unless asked for (see :func:`engine_settings`).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ganstudio.core import events as ev
from ganstudio.core.data import load_dataset
from ganstudio.core.engine import Engine, EngineSettings


@dataclass
class DatasetTiming:
    folder: str
    images: int
    resolution: int
    prepare_s: float        # scan + decode + resize every file + write the cache
    reopen_s: float         # scan + fingerprint + read the cache
    reopened_from_cache: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def time_dataset(folder: str | os.PathLike, resolution: int, cache_dir: str | os.PathLike,
                 channels: int = 3) -> DatasetTiming:
    """Prepare ``folder`` into an empty cache, then open it again (the reopen path)."""
    cache = Path(cache_dir)
    if cache.exists():
        shutil.rmtree(cache)
    t0 = time.perf_counter()
    images, report = load_dataset(folder, resolution, channels, cache_dir=cache)
    prepare_s = time.perf_counter() - t0
    del images
    t0 = time.perf_counter()
    images, again = load_dataset(folder, resolution, channels, cache_dir=cache)
    reopen_s = time.perf_counter() - t0
    return DatasetTiming(str(folder), int(report.used), int(resolution), prepare_s, reopen_s,
                         bool(again.from_cache))


@dataclass
class EngineResult:
    label: str
    batch_size: int
    precision: str
    channels_last: bool
    steps: int
    warmup_steps: int
    images: int
    seconds: float
    images_per_s: float
    device: str
    data_on_device: bool
    outcome: str
    message: str = ""
    peak_memory_mb: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d.update(d.pop("extra"))
        return d


class ThroughputProbe:
    """Engine listener: remembers (time, step, images seen) at every Metrics event."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int]] = []
        self.final: ev.Event | None = None

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Metrics):
            self.points.append((time.perf_counter(), int(event.step)))
        elif isinstance(event, (ev.Finished, ev.Failed)):
            self.final = event

    def measure(self, warmup_steps: int, batch_size: int) -> tuple[int, float]:
        """(images, seconds) between the first point at or after warm-up and the last point."""
        pts = self.points
        if len(pts) < 2:
            return 0, 0.0
        start = next((p for p in pts if p[1] >= warmup_steps), pts[0])
        if start is pts[-1]:          # only one point after warm-up: use the one before it
            start = pts[-2]
        end = pts[-1]
        return (end[1] - start[1]) * batch_size, end[0] - start[0]


def engine_settings(steps: int, warmup_steps: int, device: str, precision: str,
                    monitors: bool = False) -> EngineSettings:
    """A normal run's settings, except: no periodic checkpoint inside the short timed window
    and, unless ``monitors``, no balance alarm or KID/FID (the classic loop measures
    neither; their cost is a setting of the run, e.g. a KID/FID every 120 s)."""
    extra = {}
    if "monitors" in EngineSettings.__dataclass_fields__:
        extra["monitors"] = bool(monitors)
    # Also a metrics point every ``warmup_steps`` steps: one falls exactly at the end of the
    # warm-up even when a whole run is shorter than the 100 ms logging period.
    return EngineSettings(total_steps=int(steps + warmup_steps), device=device,
                          precision=precision, checkpoint_every_s=0.0,
                          log_every_steps=max(0, int(warmup_steps)), **extra)


def run_engine(spec: Any, folder: str | os.PathLike, run_dir: str | os.PathLike, *,
               label: str, overrides: dict, device: str, precision: str, steps: int,
               warmup_steps: int, cache_dir: str | os.PathLike, monitors: bool = False,
               drive: Callable[[Engine, ThroughputProbe], None] | None = None) -> EngineResult:
    """Train ``warmup_steps + steps`` steps with the engine; measure the last ``steps``.

    ``drive(engine, probe)`` replaces the plain ``engine.run_loop()`` call
    (the GUI worker benchmark runs the same engine inside the studio's worker).
    """
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    probe = ThroughputProbe()
    settings = engine_settings(steps, warmup_steps, device, precision, monitors)
    engine = Engine(spec, run_dir, data_folder=folder, overrides=overrides, settings=settings,
                    listeners=[probe], cache_dir=cache_dir)
    cuda = False
    try:
        engine.prepare()
        cuda = engine.device.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(engine.device.device)
        if drive is None:
            engine.run_loop()
        else:
            drive(engine, probe)
    except torch.OutOfMemoryError:
        probe.final = ev.Failed(engine.step, "the device ran out of memory while preparing",
                                kind=ev.OUT_OF_MEMORY)
    bs = int(engine.config.get("batch_size", 0) or overrides.get("batch_size", 0))
    images, seconds = probe.measure(warmup_steps, bs)
    final = probe.final
    outcome, message = "completed", ""
    if isinstance(final, ev.Failed):
        outcome, message = "failed", final.message
    elif final is None:
        outcome, message = "unknown", "the engine ended without a Finished event"
    peak = None
    if cuda:
        peak = torch.cuda.max_memory_allocated(engine.device.device) / 2**20
    result = EngineResult(
        label=label, batch_size=bs, precision=_precision_name(engine), steps=int(steps),
        warmup_steps=int(warmup_steps), images=int(images), seconds=float(seconds),
        images_per_s=images / seconds if seconds > 0 else 0.0,
        device=engine.device.name if engine.device else device,
        data_on_device=bool(engine.data.on_device) if engine.data is not None else False,
        outcome=outcome, message=message, peak_memory_mb=peak,
        channels_last=bool(engine.config.get("channels_last", False)))
    del engine
    if cuda:
        torch.cuda.empty_cache()
    return result


def _precision_name(engine: Engine) -> str:
    return engine.device.precision if engine.device is not None else "fp32"
