"""When the engine does what besides training: log a metrics line, render the
sample grid, write a checkpoint, run the monitors.

Logging, samples and checkpoints are due every N steps when a step count is
set, otherwise every so many seconds of training (pauses do not count).

The monitors (the balance alarm and KID/FID, for GANs only) run every N steps
when a step count is set - deterministic, as the conformance kit needs - and
otherwise by time *and by their measured cost*: after a check that took ``c``
seconds the next one waits at least ``c / share`` seconds, so each monitor
costs at most ``share`` of the training time (``monitor_share`` / 2 each,
5 % together by default) on any device, however slow its sampling is. The
first check, whose cost is not known yet, waits for ``*_every_s`` and for the
first sample grid's measured cost / share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Due:
    """What is due after a step."""
    log: bool = False
    samples: bool = False
    checkpoint: bool = False
    alarm: bool = False
    quality: bool = False


class Schedule:
    """Tracks the last log, grid and checkpoint; answers what is due."""

    def __init__(self, settings: Any, step: int, now: float):
        self.s = settings
        self.t_log = self.t_sample = self.t_ckpt = now
        self.last_sample_step = -1
        self.last_ckpt_step = step

    def after_step(self, step: int, now: float, *, pending_values: bool) -> Due:
        s = self.s
        log = (now - self.t_log >= s.log_every_s
               or bool(s.log_every_steps and step % s.log_every_steps == 0)
               or pending_values or step >= s.total_steps)
        if s.sample_every_steps:
            samples = step % s.sample_every_steps == 0
        else:
            samples = now - self.t_sample >= s.sample_every_s
        checkpoint = bool(s.checkpoint_every_steps and step % s.checkpoint_every_steps == 0) \
            or (s.checkpoint_every_s > 0 and now - self.t_ckpt >= s.checkpoint_every_s)
        return Due(log=log, samples=samples, checkpoint=checkpoint)

    def logged(self, now: float) -> None:
        self.t_log = now

    def sampled(self, step: int, now: float) -> None:
        self.last_sample_step, self.t_sample = step, now

    def checkpointed(self, step: int, now: float) -> None:
        self.last_ckpt_step, self.t_ckpt = step, now

    def paused_for(self, seconds: float) -> None:
        """A pause is not training time: move every clock on by it."""
        self.t_log += seconds
        self.t_sample += seconds
        self.t_ckpt += seconds


class MonitorClock:
    """When the alarm and KID/FID are due: by steps, or by time within a cost budget."""

    def __init__(self, settings: Any, now: float, first_cost_s: float = 0.0):
        self.s = settings
        share = max(float(getattr(settings, "monitor_share", 0.05)), 1e-6)
        self.share = share / 2          # each of the two monitors gets half
        self.next_at = [now + self._wait(i, first_cost_s) for i in range(2)]
        self.spent_s = 0.0              # measured time spent in monitors
        self.last: list[tuple[float, float] | None] = [None, None]   # (cost, end) per monitor

    def _every(self, i: int) -> tuple[int, float]:
        s = self.s
        return ((s.alarm_every_steps, s.alarm_every_s) if i == 0
                else (s.quality_every_steps, s.quality_every_s))

    def _wait(self, i: int, cost_s: float) -> float:
        _steps, every_s = self._every(i)
        return max(every_s, cost_s / self.share)

    def due(self, step: int, now: float) -> tuple[bool, bool]:
        out = []
        for i in range(2):
            every_steps, every_s = self._every(i)
            if every_steps > 0:
                out.append(step % every_steps == 0)
            else:
                out.append(every_s > 0 and now >= self.next_at[i])
        return out[0], out[1]

    def ran(self, i: int, seconds: float, end: float) -> None:
        """Monitor ``i`` (0 the alarm, 1 KID/FID) took ``seconds``, ending at ``end``."""
        self.spent_s += seconds
        self.last[i] = (seconds, end)
        self.next_at[i] = end + self._wait(i, seconds)

    def paused_for(self, seconds: float) -> None:
        self.next_at = [t + seconds for t in self.next_at]
