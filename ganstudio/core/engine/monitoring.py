"""Running the GAN monitors (balance alarm, KID/FID) from the engine.

Only for kind GAN, on the schedule of :class:`~.schedule.MonitorClock` (by steps,
or by time within a measured cost budget), with the random streams isolated
(:func:`~.randomness.isolated`): a check never changes what training draws
next. Values go into the next metrics line; warnings become Warning events
carrying the advice of :func:`ganstudio.core.alarm.advise`. A failure inside a
monitor is logged and turns the monitors off; it never stops training.
"""
from __future__ import annotations

import math
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
            if which == 1:
                self._keep_if_best(values.get("kid"))
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

    def _keep_if_best(self, kid: Any) -> None:
        """The live KID is the lowest this run has measured: checkpoint this step and
        record it as the run's best (``explore.json``), which checkpoint rotation keeps.
        Scores of another feature extractor (``ganstudio best`` with Inception) are not
        compared with these and are left alone. One process only: in a distributed run
        a checkpoint is a step every rank takes together."""
        e = self.e
        if not isinstance(kid, (int, float)) or not math.isfinite(kid) or e.ranks is not None:
            return
        from ..explore_state import read_state, update_state
        features = getattr(getattr(self.monitors.meter, "extractor", None), "name", "")
        state = read_state(e.run.path)
        if state.get("kid_features") not in (None, features):
            return
        best = state.get("best_step")
        best_kid = state["kid"].get(str(best)) if best is not None else None
        if best_kid is not None and kid >= best_kid:
            return
        path = e.checkpoints.write()
        if path is None:
            return
        kids = {**state["kid"], str(e.step): round(float(kid), 6)}
        update_state(e.run.path, kid=kids, best_step=e.step, kid_features=features)
        e.run.log(f"step {e.step}: KID {kid:.4g} is the lowest so far; {path.name} is kept "
                  "as the run's best checkpoint")

    @property
    def spent_s(self) -> float:
        return self.clock.spent_s if self.clock is not None else 0.0
