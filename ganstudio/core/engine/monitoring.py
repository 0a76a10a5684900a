"""Running the GAN monitors (balance alarm, KID/FID) from the engine.

Only for kind GAN, on the schedule of :class:`~.schedule.MonitorClock` (by steps,
or by time within a measured cost budget), with the random streams isolated
(:func:`~.randomness.isolated`): a check never changes what training draws
next. Values go into the next metrics line; warnings become Warning events
carrying the advice of :func:`ganstudio.core.alarm.advise`. A failure inside a
monitor is logged and turns the monitors off; it never stops training.
"""
from __future__ import annotations

import time
import traceback
from typing import Any

import torch

from ..alarm import EngineMonitors, advise
from ..model import GAN
from . import randomness
from .schedule import MonitorClock

#: The engine these functions work for (:class:`.loop.Engine`; not imported here, the
#: loop imports this module).
Engine = Any


class MonitorRunner:
    def __init__(self, engine: Engine):
        self.e = engine
        self.clock: MonitorClock | None = None
        self.monitors: EngineMonitors | None = None
        self.suggested: set[str] = set()   # settings advised in this run: not advised again

    @property
    def active(self) -> bool:
        e = self.e
        return (bool(e.settings.monitors) and e.data is not None and e.spec.kind == GAN
                and e.rank_info.is_writer)     # rank 0 alone measures a distributed run

    def start(self, now: float, first_cost_s: float) -> None:
        """Called once when the loop starts; ``first_cost_s`` is the measured cost of the
        first sample grid (the best estimate of a check's cost before one has run)."""
        self.clock = MonitorClock(self.e.settings, now, first_cost_s)

    def paused_for(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.paused_for(seconds)

    def after_step(self, now: float) -> None:
        if not self.active or self.clock is None:
            return
        alarm, quality = self.clock.due(self.e.step, now)
        for i, due in enumerate((alarm, quality)):
            if due:
                t0 = time.perf_counter()
                self._run(i)
                t1 = time.perf_counter()
                self.clock.ran(i, t1 - t0, t1)

    def _run(self, which: int) -> None:
        e = self.e
        s = e.settings
        if self.monitors is None:
            self.monitors = EngineMonitors(
                e.data, e.holdout, device=e.device.device, quality_samples=s.quality_samples,
                quality_features=s.quality_features, seed=int(e.config.get("seed", 0)),
                note=e.run.log)
        try:
            with randomness.isolated(e.device.device):
                if which == 0:
                    values, warnings = self.monitors.check_alarm(
                        e.model, e.fixed_noise, e.step,
                        e.model.discriminate if e.spec.has("d_logits") else None)
                else:
                    values, warnings = self.monitors.measure_quality(e.model), []
            e.extra_values.update(values)
            for w in warnings:
                effective = e.model.effective_config()
                settings, action = advise(w.problem, e.config, effective,
                                          e.spec, self.suggested)
                e.warn(f"step {e.step}: {w.message}", w.kind, settings=settings, action=action)
        except torch.OutOfMemoryError:
            raise
        except Exception:  # noqa: BLE001 - a monitor must never stop training
            s.monitors = False
            e.run.log("the balance alarm / quality measures failed and are off for this "
                      f"run:\n{traceback.format_exc()}", "WARNING")

    @property
    def spent_s(self) -> float:
        return self.clock.spent_s if self.clock is not None else 0.0
