"""Work off the GUI thread: one QThread per job, results back as queued signals.

Every QThread the studio starts is registered here, so closing the window can
join them all and the tests can fail when one is left running (napari's test
suite does the same for its thread workers).
"""
from __future__ import annotations

import itertools
import traceback
import weakref
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

_LIVE: "weakref.WeakSet[QThread]" = weakref.WeakSet()


def track_thread(thread: QThread) -> QThread:
    """Register a QThread started by the studio (see :func:`running_threads`)."""
    _LIVE.add(thread)
    return thread


def running_threads() -> list[QThread]:
    """Studio threads that are still running."""
    out = []
    for t in list(_LIVE):
        try:
            if t.isRunning():
                out.append(t)
        except RuntimeError:  # the C++ object is already gone
            continue
    return out


def error_text(exc: BaseException) -> str:
    """One line for the user: UserError messages as they are, others with their type."""
    from ganstudio.core.errors import UserError
    if isinstance(exc, UserError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


class _Job(QObject):
    done = Signal(int, object)
    error = Signal(int, str, str)

    def __init__(self, job_id: int, fn: Callable[[], Any]):
        super().__init__()
        self.job_id = job_id
        self.fn = fn

    @Slot()
    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as e:  # noqa: BLE001 - reported to the GUI, never lost
            self.error.emit(self.job_id, error_text(e), traceback.format_exc())
        else:
            self.done.emit(self.job_id, result)
        finally:
            QThread.currentThread().quit()


class Tasks(QObject):
    """Runs callables in background threads; callbacks run in the GUI thread.

    The callbacks are called from slots of this object, which lives in the GUI
    thread, so the connection from the job's thread is queued.
    """

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._jobs: dict[int, tuple[QThread, _Job, Callable | None, Callable | None]] = {}

    def start(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
              on_error: Callable[[str, str], None] | None = None) -> int:
        job_id = next(self._ids)
        thread = track_thread(QThread())
        thread.setObjectName(f"ganstudio-task-{job_id}")
        job = _Job(job_id, fn)
        job.moveToThread(thread)
        thread.started.connect(job.run)
        job.done.connect(self._on_done)
        job.error.connect(self._on_error)
        thread.finished.connect(lambda jid=job_id: self._cleanup(jid))
        self._jobs[job_id] = (thread, job, on_done, on_error)
        thread.start()
        return job_id

    @property
    def busy(self) -> int:
        return sum(1 for t, *_ in self._jobs.values() if t.isRunning())

    @Slot(int, object)
    def _on_done(self, job_id: int, result: Any) -> None:
        entry = self._jobs.get(job_id)
        if entry and entry[2] is not None:
            entry[2](result)

    @Slot(int, str, str)
    def _on_error(self, job_id: int, message: str, tb: str) -> None:
        entry = self._jobs.get(job_id)
        if entry and entry[3] is not None:
            entry[3](message, tb)

    def _cleanup(self, job_id: int) -> None:
        entry = self._jobs.get(job_id)
        if entry is None:
            return
        thread = entry[0]
        if thread.isRunning():
            return
        self._jobs.pop(job_id, None)

    def wait_all(self, timeout_ms: int = 30_000) -> bool:
        """Join every job's thread (at close). True when all ended in time."""
        ok = True
        for thread, *_ in list(self._jobs.values()):
            if thread.isRunning():
                ok = thread.wait(timeout_ms) and ok
        return ok
