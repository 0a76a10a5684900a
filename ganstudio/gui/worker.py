"""The training worker: drives :class:`ganstudio.core.engine.Engine` on a QThread.

The engine calls its listeners in the training thread; :class:`TrainingWorker`
re-emits each engine event as a Qt signal. Receivers are QObjects living in the
GUI thread, so Qt queues every delivery: the GUI thread never runs training
code and never waits on the device. Commands (pause, resume, stop, checkpoint
now, roll back) are plain method calls into the engine's thread-safe mailbox,
checked between steps.
"""
from __future__ import annotations

import os
import threading
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from ganstudio.core import events as ev
from .tasks import error_text, track_thread


def process_memory_bytes() -> int | None:
    """Resident memory of this process (Linux /proc; None elsewhere). No GPU sync."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class TrainingWorker(QObject):
    """Runs one training run in the thread it was moved to.

    ``run()`` prepares the data (in this thread: decoding a folder never blocks
    the GUI), builds the engine and trains until done, stopped or failed.
    ``done`` is always the last signal.
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
                 plugin_manager: Any = None, cache_dir: str | None = None):
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

    # -- the thread's body -------------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        try:
            self._train()
        except BaseException as e:  # noqa: BLE001 - every failure reaches the window
            self.failed.emit(ev.Failed(0, error_text(e), traceback.format_exc()))
        finally:
            self.done.emit()

    def _train(self) -> None:
        from ganstudio.core.engine import Engine, EngineSettings
        from ganstudio.core.errors import UserError

        listeners = [self._forward]
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
            engine.prepare(progress=lambda done, total: self.preparing.emit(done, total))
        except UserError as e:
            if self.init_from and engine.model is not None and engine.init_record is None:
                # the model was built but the source's weights did not go in
                self.refused.emit({"message": str(e), "config": dict(engine.config)})
            else:
                self.failed.emit(ev.Failed(0, str(e)))
            return
        self._on_cuda = engine.device is not None and engine.device.device.type == "cuda"
        self.prepared.emit(engine.report)
        engine.run_loop()

    def _memory(self) -> int | None:
        if self._on_cuda:
            from ganstudio.core.devices import memory_in_use
            return memory_in_use(self.engine.device.device)  # a host-side counter, no sync
        return process_memory_bytes()

    def _forward(self, event: ev.Event) -> None:
        """Engine listener (training thread): one queued signal per event."""
        if isinstance(event, ev.Metrics):
            self.metrics.emit(event, self._memory())
        elif isinstance(event, ev.Samples):
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


class TrainingSession:
    """A worker plus its QThread: start, command, join."""

    def __init__(self, worker: TrainingWorker):
        self.worker = worker
        self.thread = track_thread(QThread())
        self.thread.setObjectName("ganstudio-training")
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # Direct: quit() is thread-safe, and a GUI thread blocked in join() still ends it.
        worker.done.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    def join(self, timeout_ms: int = 60_000) -> bool:
        return self.thread.wait(timeout_ms)
