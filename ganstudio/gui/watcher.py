"""Watch a run folder that another process writes (the headless CLI, maybe on another
machine through a shared disk): tail metrics.jsonl and pick up new sample grids.

Polling happens in a worker thread (reading a file on a network disk may
stall); rows and grids arrive in the GUI thread as queued signals.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QMetaObject, QObject, Qt, QThread, QTimer, Signal, Slot

from ganstudio.core.runs import RunFolder
from .tasks import error_text, track_thread


def read_grid(path: str | Path) -> np.ndarray:
    """A saved grid PNG as (H, W, C) uint8."""
    from PIL import Image
    with Image.open(path) as img:
        img = img.convert("L") if img.mode in ("L", "I", "I;16") else img.convert("RGB")
        arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


class RunTail(QObject):
    """Lives in the watcher thread; one :meth:`poll` reads whatever is new."""

    reset = Signal()                   # the metrics file shrank (the run was resumed): start over
    rows = Signal(list)                # new metrics rows
    frames = Signal(list)              # every saved grid [(step, path)] when the list changed
    grid = Signal(int, str, object)    # newest grid: step, path, (H, W, C) uint8
    info = Signal(object)              # run.json (dict) when it changes
    error = Signal(str)

    def __init__(self, run_dir: str | Path, interval_ms: int = 1000):
        super().__init__()
        self.run = RunFolder(run_dir)
        self.interval_ms = interval_ms
        self.offset = 0
        self.last_frames: list[tuple[int, str]] = []
        self.info_mtime = 0.0
        self.timer: QTimer | None = None
        self.polls = 0

    @Slot()
    def begin(self) -> None:
        self.timer = QTimer(self)
        self.timer.setInterval(self.interval_ms)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self.poll()

    @Slot()
    def halt(self) -> None:
        """Stop polling (called in this object's thread before the thread quits)."""
        if self.timer is not None:
            self.timer.stop()

    @Slot()
    def poll(self) -> None:
        try:
            self._poll()
        except Exception as e:  # noqa: BLE001 - a flaky shared disk must not end the watch
            self.error.emit(error_text(e))
        self.polls += 1

    def _poll(self) -> None:
        try:
            mtime = self.run.info_path.stat().st_mtime
        except OSError:
            mtime = 0.0
        if mtime and mtime != self.info_mtime:
            self.info_mtime = mtime
            self.info.emit(self.run.read_info())
        try:
            size = self.run.metrics_path.stat().st_size
        except OSError:
            size = 0
        if size < self.offset:
            self.offset = 0
            self.reset.emit()
        rows, self.offset = self.run.read_metrics(self.offset)
        if rows:
            self.rows.emit(rows)
        frames = [(s, str(p)) for s, p in self.run.list_samples()]
        if frames != self.last_frames:
            newest_changed = not self.last_frames or frames[-1:] != self.last_frames[-1:]
            self.last_frames = frames
            self.frames.emit(frames)
            if frames and newest_changed:
                step, path = frames[-1]
                try:
                    self.grid.emit(step, path, read_grid(path))
                except OSError:
                    pass  # being written right now; the next poll gets it


class RunWatcher(QObject):
    """Follows one run folder live until :meth:`stop`."""

    def __init__(self, run_dir: str | Path, interval_ms: int = 1000,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.tail = RunTail(run_dir, interval_ms)
        self.thread = track_thread(QThread())
        self.thread.setObjectName("ganstudio-watch")
        self.tail.moveToThread(self.thread)
        self.thread.started.connect(self.tail.begin)
        self.thread.finished.connect(self.tail.deleteLater)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    def stop(self, timeout_ms: int = 10_000) -> bool:
        if not self.thread.isRunning():
            return True
        # The timer lives in the watcher thread and must be stopped there.
        QMetaObject.invokeMethod(self.tail, "halt", Qt.ConnectionType.BlockingQueuedConnection)
        self.thread.quit()
        return self.thread.wait(timeout_ms)
