"""How long a training run will take on this device: measured, not guessed.

Before a run starts, :func:`estimate_run` builds the model with the run's
settings on the chosen device and precision, times a few real training steps
on random images of the run's shape (the first steps, which allocate and
warm caches, are not counted; the median step sets the pace), times one
render of the sample grid, and scales to the run's step budget. :func:`faster_alternatives` measures the
same for lighter settings the model declares (``ModelSpec.quick_settings``)
and for fewer steps, so a face can offer a run that finishes in reasonable
time on this machine. Returns data only; the CLI and the studio word it.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .config import resolve_config
from .cpu_share import CpuShare
from .data import DeviceImages
from .devices import pick_device
from .errors import UserError
from .model import FOLDER_KINDS, GAN, ModelSpec

#: The engine renders the fixed-noise grid about this often (seconds).
SAMPLE_EVERY_S = 5.0
#: Share of training time the engine's monitors, logging and checkpoints may take.
MONITOR_SHARE = 0.05


@dataclass(frozen=True)
class RunEstimate:
    """The measured cost of a run.

    changes:  settings that differ from what was asked (empty for the run as asked),
              plus ``"steps"`` when the step budget differs.
    """

    steps: int
    seconds_per_step: float
    total_seconds: float
    images_per_second: float
    device: str
    precision: str
    config: dict[str, Any]
    changes: dict[str, Any] = field(default_factory=dict)


def _step_shape(spec: ModelSpec, config: dict[str, Any]) -> tuple[int, int, int]:
    if spec.kind not in FOLDER_KINDS:
        raise UserError(f"{spec.id}: only models trained on an image folder have a run "
                        "time to estimate")
    return int(config["channels"]), int(config["resolution"]), int(config["resolution"])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # timing needs the queued kernels done (a deliberate sync)
        torch.cuda.synchronize(device)


#: What the faster choices for a long run aim at: a first result within a quarter
#: of an hour on this device (a choice that merely scrapes under the hour that made
#: the run "long" saves nothing worth a click).
SHORT_RUN_S = 900.0


def choice_target(long_s: float) -> float:
    """What the faster choices aim at when a run is longer than ``long_s``."""
    return min(SHORT_RUN_S, long_s / 4)


def _time_steps(one_step: Callable[[], int], dev: torch.device, timed_steps: int,
                max_seconds: float, cancelled: Callable[[], bool] | None
                ) -> tuple[float, float, int]:
    """(seconds of the median step, seconds spent, images seen) over the timed steps."""
    spent, images_seen, times = 0.0, 0, []
    while len(times) < max(1, timed_steps):
        if cancelled is not None and cancelled():
            break
        t0 = time.perf_counter()
        images_seen += one_step()
        _sync(dev)
        times.append(time.perf_counter() - t0)
        spent += times[-1]
        if spent >= max_seconds:
            break
    # The median step: on a shared machine one step slowed by another process must not
    # set the pace of the whole run.
    return (statistics.median(times) if times else 0.0), spent, images_seen


def measure(spec: ModelSpec, overrides: dict[str, Any] | None, steps: int, *,
            device: str = "auto", precision: str = "auto", timed_steps: int = 5,
            warmup_steps: int = 2,
            max_seconds: float = 20.0, n_samples: int = 64,
            cancelled: Callable[[], bool] | None = None) -> RunEstimate:
    """Time ``timed_steps`` training steps (after ``warmup_steps``, which run slower while
    caches fill) of ``spec`` with ``overrides`` and return the estimate for ``steps``
    steps, from the median step. Stops timing early
    once ``max_seconds`` have been spent (at least one timed step is always made)."""
    config = resolve_config(spec.schema, overrides or {})
    shape = _step_shape(spec, config)
    choice = pick_device(device, precision=precision)
    dev = choice.device
    autocast = (torch.autocast(dev.type, dtype=choice.autocast_dtype)
                if choice.autocast_dtype is not None else None)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(0)
        model = spec.factory(config, shape, dev)
        n_images = max(2 * int(model.batch_size), 16)
        images = torch.randint(0, 256, (n_images, *shape), dtype=torch.uint8)
        data = DeviceImages(images, dev, seed=0)
        model.attach_data(data)

        def one_step() -> int:
            want = int(model.batch_size)
            real = None if model.draws_own_batches else data.batch(want)
            if autocast is not None:
                with autocast:
                    model.train_step(real)
            else:
                model.train_step(real)
            return want

        share = (CpuShare(torch.get_num_threads())
                 if dev.type == "cpu" and "OMP_NUM_THREADS" not in os.environ else None)
        for _ in range(max(1, warmup_steps)):  # allocation, algorithm choice, lazy init
            one_step()
        _sync(dev)
        threads = torch.get_num_threads()
        if share is not None and share.available:   # the threads the engine would use now
            wanted = share.poll_now()
            if wanted is not None:
                torch.set_num_threads(wanted)
        try:
            per_step, spent, images_seen = _time_steps(one_step, dev, timed_steps,
                                                       max_seconds, cancelled)
        finally:
            torch.set_num_threads(threads)
        sample_s = 0.0
        if spec.kind == GAN:  # the engine renders a grid of samples for GANs
            z = model.make_latents(n_samples)
            t0 = time.perf_counter()
            model.sample(z)
            _sync(dev)
            sample_s = time.perf_counter() - t0
    train_s = per_step * steps
    # The grid is rendered every SAMPLE_EVERY_S of training, plus the monitors' share.
    renders = train_s / SAMPLE_EVERY_S
    total = train_s * (1.0 + MONITOR_SHARE) + renders * sample_s
    ips = (images_seen / spent) if spent > 0 else math.nan
    return RunEstimate(steps=int(steps), seconds_per_step=per_step, total_seconds=total,
                       images_per_second=ips, device=choice.name, precision=choice.precision,
                       config=config)


def faster_alternatives(spec: ModelSpec, overrides: dict[str, Any] | None, steps: int,
                        target_seconds: float, *, device: str = "auto",
                        precision: str = "auto", measured: RunEstimate | None = None,
                        **kwargs: Any) -> list[RunEstimate]:
    """Lighter runs for ``target_seconds`` on this device (see :data:`SHORT_RUN_S`).

    Candidates: the model's declared ``quick_settings`` at the same step budget
    (offered when they fit the target or at least halve the time), then, for the
    run as asked and for the quick settings, the step budget cut to fit the target
    (never below a tenth of the budget asked: fewer steps teach too little to be
    worth offering, so a run too long for that gets the tenth). Each candidate is
    measured."""
    overrides = dict(overrides or {})
    asked = measured or measure(spec, overrides, steps, device=device, precision=precision,
                                **kwargs)
    out: list[RunEstimate] = []
    quick = {k: v for k, v in (spec.quick_settings or {}).items()
             if spec.field(k) is not None and overrides.get(k, asked.config.get(k)) != v}
    light = None
    if quick:
        light = measure(spec, {**overrides, **quick}, steps, device=device,
                        precision=precision, **kwargs)
        light = _with_changes(light, quick)
        if light.total_seconds < asked.total_seconds and \
                light.total_seconds <= max(target_seconds, asked.total_seconds / 2):
            out.append(light)
    for base in (asked, light):
        if base is None or base.total_seconds <= target_seconds:
            continue
        # the budget that fits the target, but never below a tenth of it (fewer steps
        # teach too little): then the tenth, still ten times sooner
        fit_steps = max(int(steps * target_seconds / base.total_seconds), max(1, steps // 10))
        if fit_steps < steps:
            scale = fit_steps / steps
            out.append(RunEstimate(
                steps=fit_steps, seconds_per_step=base.seconds_per_step,
                total_seconds=base.total_seconds * scale,
                images_per_second=base.images_per_second, device=base.device,
                precision=base.precision, config=base.config,
                changes={**base.changes, "steps": fit_steps}))
    return out


def _with_changes(estimate: RunEstimate, changes: dict[str, Any]) -> RunEstimate:
    return RunEstimate(steps=estimate.steps, seconds_per_step=estimate.seconds_per_step,
                       total_seconds=estimate.total_seconds,
                       images_per_second=estimate.images_per_second, device=estimate.device,
                       precision=estimate.precision, config=estimate.config,
                       changes=dict(changes))
