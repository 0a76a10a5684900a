"""The training worker: drives :class:`ganstudio.core.engine.Engine` as a studio job.

Training runs through the studio's one pattern for background work
(:mod:`ganstudio.gui.tasks`): :meth:`TrainingWorker.job` is the job's function,
run on the job's own thread. The engine calls its listeners in that thread;
the worker passes each event on with ``ctx.emit`` (queued, in order), and in the
GUI thread :meth:`TrainingWorker.deliver` turns it into one of the worker's
signals, which the window connects to. The GUI thread never runs training code
and never waits on the device. Commands (pause, resume, stop, checkpoint now,
roll back) are plain method calls into the engine's thread-safe mailbox,
checked between steps. ``listeners`` are also called in the training thread
(the GUI benchmark takes its timestamps there).
"""
from __future__ import annotations

import os
import threading
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from ganstudio.core import events as ev
from .tasks import TaskContext, TaskHandle, Tasks, error_text


def process_memory_bytes() -> int | None:
    """Resident memory of this process (Linux /proc; None elsewhere). No GPU sync."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class TrainingWorker(QObject):
    """One training run: :meth:`job` runs in the job's thread, the signals are emitted
    in the GUI thread.

    ``job()`` prepares the data (in the job's thread: decoding a folder never blocks
    the GUI), builds the engine and trains until done, stopped or failed.
    ``done`` is always the last signal (the job's ``finished``).
    """

    preparing = Signal(int, int)        # files decoded, total files
    prepared = Signal(object)           # DatasetReport or None
    started = Signal(object)            # ev.Started
    metrics = Signal(object, object)    # ev.Metrics, memory in use (bytes) or None
    samples = Signal(object)            # ev.Samples
    checkpoint = Signal(object)         # ev.CheckpointWritten
    warning = Signal(object)            # ev.Warning
    paused = Signal(object)             # ev.Paused
    resumed = Signal(object)            # ev.Resumed
    finished = Signal(object)           # ev.Finished
    failed = Signal(object)             # ev.Failed (training errors and preparation errors)
    refused = Signal(object)            # {"message", "config"}: the init_from run's networks
                                        # do not fit this model (nothing was trained)
    done = Signal()

    def __init__(self, spec: Any, run_dir: str | Path, *, data_folder: str | Path | None,
                 overrides: dict[str, Any], settings: dict[str, Any], resume: bool = False,
                 restart: bool = False, init_from: str | None = None,
                 plugin_manager: Any = None, cache_dir: str | None = None,
                 listeners: list[Any] | None = None):
        super().__init__()
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.data_folder = data_folder
        self.overrides = dict(overrides)
        self.settings = dict(settings)
        self.resume = resume
        self.restart = restart  # start the run's folder over (its history is set aside)
        self.init_from = init_from  # RUN[:CHECKPOINT]: a new run starts from its weights
        self.plugin_manager = plugin_manager
        self.cache_dir = cache_dir
        self.engine: Any = None
        self.listeners = list(listeners or [])   # called in the training thread
        self._ctx: TaskContext | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[str, tuple]] = []
        self._on_cuda = False

    # -- commands (GUI thread) ---------------------------------------------------------------
    def _command(self, name: str, *args: Any) -> None:
        with self._lock:
            if self.engine is None:
                self._pending.append((name, args))
                return
            engine = self.engine
        getattr(engine, name)(*args)

    def pause(self) -> None:
        self._command("pause")

    def resume_training(self) -> None:
        self._command("resume")

    def stop(self) -> None:
        self._command("stop")

    def checkpoint_now(self) -> None:
        self._command("checkpoint_now")

    def rollback(self, lr_factor: float = 0.5) -> None:
        self._command("rollback", float(lr_factor))

    # -- the job (its own thread) ------------------------------------------------------------
    def job(self, ctx: TaskContext) -> None:
        """The job's function: train, passing every event on through ``ctx.emit``."""
        self._ctx = ctx
        try:
            self._train()
        except BaseException as e:  # noqa: BLE001 - every failure reaches the window
            ctx.emit(ev.Failed(0, error_text(e), traceback.format_exc()))
        finally:
            self._ctx = None

    def _train(self) -> None:
        from ganstudio.core.engine import Engine, EngineSettings
        from ganstudio.core.errors import UserError

        listeners = [self._forward, *self.listeners]
        pm = self.plugin_manager
        if pm is not None and hasattr(pm, "metrics_listener"):
            listeners.append(pm.metrics_listener(str(self.run_dir)))
        version = pm.plugin_version(self.spec) if pm is not None else ""
        engine = Engine(self.spec, self.run_dir, data_folder=self.data_folder,
                        overrides=self.overrides, settings=EngineSettings(**self.settings),
                        listeners=listeners, resume=self.resume, restart=self.restart,
                        cache_dir=self.cache_dir, init_from=self.init_from,
                        plugin_version=version)
        with self._lock:
            self.engine = engine
            pending, self._pending = self._pending, []
        for name, args in pending:
            getattr(engine, name)(*args)
        try:
            engine.prepare(progress=lambda done, total: self._emit(("preparing", done, total)))
        except UserError as e:
            if self.init_from and engine.model is not None and engine.init_record is None:
                # the model was built but the source's weights did not go in
                self._emit(("refused", {"message": str(e), "config": dict(engine.config)}))
            else:
                self._forward(ev.Failed(0, str(e)))
            return
        self._on_cuda = engine.device is not None and engine.device.device.type == "cuda"
        self._emit(("prepared", engine.report))
        engine.run_loop()

    def _memory(self) -> int | None:
        if self._on_cuda:
            from ganstudio.core.devices import memory_in_use
            return memory_in_use(self.engine.device.device)  # a host-side counter, no sync
        return process_memory_bytes()

    def _emit(self, item: Any) -> None:
        if self._ctx is not None:
            self._ctx.emit(item)

    def _forward(self, event: ev.Event) -> None:
        """Engine listener (training thread): each event goes to the GUI thread, queued;
        a metrics event with the memory in use, read here (no device sync)."""
        if isinstance(event, ev.Metrics):
            self._emit((event, self._memory()))
        else:
            self._emit(event)

    def deliver(self, item: Any) -> None:
        """In the GUI thread: one of the worker's signals for each item the job sent."""
        if isinstance(item, tuple) and item and item[0] == "preparing":
            self.preparing.emit(item[1], item[2])
        elif isinstance(item, tuple) and item and item[0] == "prepared":
            self.prepared.emit(item[1])
        elif isinstance(item, tuple) and item and item[0] == "refused":
            self.refused.emit(item[1])
        elif isinstance(item, tuple):
            self.metrics.emit(item[0], item[1])
        else:
            self._signal(item)

    def _signal(self, event: ev.Event) -> None:
        if isinstance(event, ev.Samples):
            self.samples.emit(event)
        elif isinstance(event, ev.Started):
            self.started.emit(event)
        elif isinstance(event, ev.CheckpointWritten):
            self.checkpoint.emit(event)
        elif isinstance(event, ev.Warning):
            self.warning.emit(event)
        elif isinstance(event, ev.Paused):
            self.paused.emit(event)
        elif isinstance(event, ev.Resumed):
            self.resumed.emit(event)
        elif isinstance(event, ev.Finished):
            self.finished.emit(event)
        elif isinstance(event, ev.Failed):
            self.failed.emit(event)


def _app_tasks() -> Tasks:
    """Jobs for sessions started without a window's Tasks (benchmarks, tests): one
    runner that lives as long as the application."""
    app = QCoreApplication.instance()
    tasks = getattr(app, "_ganstudio_training_tasks", None)
    if tasks is None:
        tasks = Tasks(app)
        app._ganstudio_training_tasks = tasks
    return tasks


class TrainingSession:
    """A worker run as a studio job: start, command (through ``worker``), join."""

    def __init__(self, worker: TrainingWorker, tasks: Tasks | None = None):
        self.worker = worker
        self.tasks = tasks if tasks is not None else _app_tasks()
        self.handle: TaskHandle | None = None

    def start(self) -> None:
        w = self.worker
        self.handle = self.tasks.run(w.job, on_event=w.deliver, on_finished=w.done.emit,
                                     name="training")
        if not self.handle.alive and not self.handle.running:   # the runner was closed
            w.failed.emit(ev.Failed(0, "the studio is closing; nothing new starts"))
            w.done.emit()

    @property
    def running(self) -> bool:
        """True while the training thread runs."""
        return self.handle is not None and self.handle.alive

    def join(self, timeout_ms: int = 60_000) -> bool:
        return self.handle.wait(timeout_ms) if self.handle is not None else True
