"""Running a style job for a face that shows it live (the studio tab). Qt-free.

A job runs the engine in the caller's (background) thread. Events go into an
:class:`EventInbox` that the face drains in its own thread; progress with an
ETA goes to a task context (``progress(fraction, text)``, ``cancelled()``, the
studio's :class:`~ganstudio.gui.panel_api.TaskContext`); the job ends with a
:class:`JobOutcome` carrying the final picture of an optimisation.

The face never reaches into the engine or the model: the final picture comes
from the job's declared ``ImageJob.result()``, taken here in the job's thread.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ganstudio.core import events as ev
from ganstudio.core.image_files import to_uint8_hwc
from ganstudio.core.model import IMAGE_TO_IMAGE
from ganstudio.core.units import format_duration


class TaskContext(Protocol):
    def progress(self, fraction: float, text: str = "") -> None: ...
    def cancelled(self) -> bool: ...


@dataclass
class JobOutcome:
    """How a job ended: ``reason`` "completed", "stopped" or "failed"; ``result`` the
    final (H, W, 3) uint8 picture of an optimisation (None for a network's training)."""

    reason: str
    step: int
    run_dir: Path
    message: str = ""
    result: np.ndarray | None = None


class EventInbox:
    """Engine events handed from the job's thread to the face's thread (thread-safe)."""

    def __init__(self, keep_samples: int = 2):
        self._lock = threading.Lock()
        self._events: collections.deque[ev.Event] = collections.deque()
        self._keep_samples = keep_samples

    def put(self, event: ev.Event) -> None:
        if not isinstance(event, (ev.Metrics, ev.Samples, ev.Warning, ev.Started)):
            return
        with self._lock:
            self._events.append(event)
            # previews are large and only the newest matters: drop older ones
            samples = [e for e in self._events if isinstance(e, ev.Samples)]
            for old in samples[:-self._keep_samples]:
                self._events.remove(old)

    def drain(self) -> list[ev.Event]:
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out


class Progress:
    """Engine listener: ``ctx.progress(fraction, "iteration 40/300 · 2.1 it/s · ETA 02:10")``
    and a stop when the task is cancelled. ``unit`` names a step ("iteration", "step")."""

    def __init__(self, ctx: TaskContext, engine_stop, unit: str = "iteration"):
        self.ctx = ctx
        self.stop = engine_stop
        self.unit = unit
        self.t0: float | None = None
        self.first_step = 0

    def __call__(self, event: ev.Event) -> None:
        if self.ctx.cancelled():
            self.stop()
        if isinstance(event, ev.Started):
            self.t0, self.first_step = time.perf_counter(), event.step
            self.ctx.progress(event.step / max(1, event.total_steps),
                              f"started on {event.device}")
        elif isinstance(event, ev.Metrics):
            self.ctx.progress(min(1.0, event.step / max(1, event.total_steps)),
                              self.text(event.step, event.total_steps))

    def text(self, step: int, total: int) -> str:
        line = f"{self.unit} {step}/{total}"
        if self.t0 is None or step <= self.first_step:
            return line
        seconds = time.perf_counter() - self.t0
        rate = (step - self.first_step) / max(seconds, 1e-9)
        left = (total - step) / rate if rate > 0 else float("inf")
        return f"{line} · {rate:.2g} {self.unit}s/s · ETA {format_duration(left)}"


class StyleJob:
    """One engine run of a style model, driven from a background thread.

    ``stop()`` may be called from any thread; before the engine exists it is
    remembered. ``run(ctx)`` returns a :class:`JobOutcome`; bad settings or
    inputs raise :class:`UserError` before anything is written.
    """

    def __init__(self, spec: Any, run_dir: str | Path, *, overrides: dict,
                 settings: dict, plugin_manager: Any = None, data_folder: str | None = None,
                 unit: str = "iteration"):
        self.spec = spec
        self.run_dir = Path(run_dir).expanduser()
        self.overrides = dict(overrides)
        self.settings = dict(settings)
        self.pm = plugin_manager
        self.data_folder = data_folder
        self.unit = unit
        self.inbox = EventInbox()
        self._lock = threading.Lock()
        self._engine: Any = None
        self._stop_requested = False

    def stop(self) -> None:
        with self._lock:
            self._stop_requested = True
            engine = self._engine
        if engine is not None:
            engine.stop()

    def run(self, ctx: TaskContext) -> JobOutcome:
        from ganstudio.core.engine import Engine, EngineSettings

        listeners: list = [self.inbox.put, Progress(ctx, self.stop, self.unit)]
        version = ""
        if self.pm is not None:
            listeners.append(self.pm.metrics_listener(str(self.run_dir)))
            version = self.pm.plugin_version(self.spec)
        engine = Engine(self.spec, self.run_dir, data_folder=self.data_folder,
                        overrides=self.overrides, settings=EngineSettings(**self.settings),
                        listeners=listeners, plugin_version=version)
        with self._lock:
            self._engine = engine
            if self._stop_requested:
                engine.stop()
        engine.prepare()
        end = engine.run_loop()
        if isinstance(end, ev.Failed):
            return JobOutcome("failed", end.step, self.run_dir, end.message)
        return JobOutcome(end.reason, end.step, self.run_dir,
                          result=final_picture(self.spec, engine.model))


def final_picture(spec: Any, model: Any) -> np.ndarray | None:
    """The final (H, W, 3) uint8 picture of an image-to-image job (its declared
    ``result()``, the best so far when stopped), None for a network's training."""
    if spec.kind != IMAGE_TO_IMAGE:
        return None
    return to_uint8_hwc((model.result().detach().float() + 1) / 2)
