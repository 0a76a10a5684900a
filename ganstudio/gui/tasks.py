"""Work off the GUI thread: one pattern for every background job of the studio.

A job is a function ``fn(ctx)`` run on its own QThread. It reports through a
:class:`TaskContext` (``ctx.progress(fraction, text)``, ``ctx.emit(item)`` for a
job that streams its own events, such as training, and ``ctx.cancelled()``) and
its outcome reaches the GUI thread as queued signals: started, progress and
events, result or error, and always finished last. :meth:`Tasks.run` returns a
:class:`TaskHandle` to cancel it (cooperatively: the job polls ``cancelled()``)
and to join its thread.

Every QThread the studio starts is registered here, so closing the window can
join them all and the tests can fail when one is left running (napari's test
suite does the same for its thread workers).
"""
from __future__ import annotations

import itertools
import threading
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


class TaskContext:
    """Handed to a background function: report progress, notice a cancel request."""

    def __init__(self, emit_progress: Callable[[float, str], None] | None = None,
                 emit_event: Callable[[Any], None] | None = None):
        self._emit = emit_progress
        self._emit_event = emit_event
        self._cancel = threading.Event()

    def progress(self, fraction: float, text: str = "") -> None:
        """Report progress (0..1) from the job's thread; shown in the GUI thread."""
        if self._emit is not None:
            f = float(fraction)
            self._emit(0.0 if f != f else min(1.0, max(0.0, f)), str(text))

    def emit(self, item: Any) -> None:
        """Send ``item`` to the job's ``on_event`` in the GUI thread (queued, in order)."""
        if self._emit_event is not None:
            self._emit_event(item)

    def cancelled(self) -> bool:
        """True once :meth:`TaskHandle.cancel` was called: return early."""
        return self._cancel.is_set()

    def _request_cancel(self) -> None:
        self._cancel.set()


class TaskHandle:
    """What :meth:`Tasks.run` returns: cancel the job, ask whether it still runs."""

    def __init__(self, job_id: int, ctx: TaskContext, thread: QThread | None):
        self.job_id = job_id
        self._ctx = ctx
        self._thread = thread
        self._finished = False

    def cancel(self) -> None:
        self._ctx._request_cancel()

    @property
    def cancel_requested(self) -> bool:
        return self._ctx.cancelled()

    @property
    def running(self) -> bool:
        """True until the job's ``finished`` callback has been delivered."""
        return not self._finished

    @property
    def alive(self) -> bool:
        """True while the job's thread runs (it may end before ``finished`` is delivered)."""
        if self._thread is None:
            return False
        try:
            return self._thread.isRunning()
        except RuntimeError:  # the C++ thread object is gone: it ended
            return False

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Join the job's thread (the callbacks still arrive through the event loop)."""
        if self._thread is None:  # never started (the studio was closing)
            return True
        try:
            return self._thread.wait(timeout_ms)
        except RuntimeError:  # the C++ thread object is gone: it ended
            return True


class _Job(QObject):
    """Runs ``fn(ctx)`` in the thread it was moved to and reports by signal."""

    started = Signal(int)
    progress = Signal(int, float, str)
    event = Signal(int, object)
    result = Signal(int, object)
    error = Signal(int, str, str)
    finished = Signal(int)

    def __init__(self, job_id: int, fn: Callable[[TaskContext], Any], ctx: TaskContext):
        super().__init__()
        self.job_id = job_id
        self.fn = fn
        self.ctx = ctx

    @Slot()
    def run(self) -> None:
        self.started.emit(self.job_id)
        try:
            result = self.fn(self.ctx)
        except BaseException as e:  # noqa: BLE001 - reported to the GUI, never lost
            self.error.emit(self.job_id, error_text(e), traceback.format_exc())
        else:
            self.result.emit(self.job_id, result)
        finally:
            self.ctx._emit = self.ctx._emit_event = None  # no cycle left for the collector
            self.fn = None   # nor the job's function (a bound method keeps its object alive)
            self.finished.emit(self.job_id)
            QThread.currentThread().quit()


class Tasks(QObject):
    """Runs jobs in background threads; the callbacks run in the GUI thread.

    The callbacks are called from slots of this object, which lives in the GUI
    thread, so every connection from a job's thread is queued.
    """

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._jobs: dict[int, dict[str, Any]] = {}
        self._ending: list[QThread] = []
        self.closed = False

    def run(self, fn: Callable[[TaskContext], Any], *,
            on_result: Callable[[Any], None] | None = None,
            on_error: Callable[[str, str], None] | None = None,
            on_progress: Callable[[float, str], None] | None = None,
            on_event: Callable[[Any], None] | None = None,
            on_finished: Callable[[], None] | None = None,
            on_started: Callable[[], None] | None = None,
            name: str = "task") -> TaskHandle:
        """Run ``fn(ctx)`` on a new tracked thread; see the module's docstring."""
        job_id = next(self._ids)
        if self.closed:  # the window is closing: nothing new starts (it could outlive it)
            handle = TaskHandle(job_id, TaskContext(), None)
            handle._finished = True
            handle.cancel()
            return handle
        thread = track_thread(QThread())
        thread.setObjectName(f"ganstudio-{name}-{job_id}")
        job: _Job | None = None

        def emit_progress(fraction: float, text: str) -> None:
            if job is not None:
                job.progress.emit(job_id, fraction, text)

        def emit_event(item: Any) -> None:
            if job is not None:
                job.event.emit(job_id, item)

        ctx = TaskContext(emit_progress, emit_event)
        job = _Job(job_id, fn, ctx)
        job.moveToThread(thread)
        handle = TaskHandle(job_id, ctx, thread)
        thread.started.connect(job.run)
        thread.finished.connect(job.deleteLater)   # freed in its own thread as it ends
        job.started.connect(self._on_started)
        job.progress.connect(self._on_progress)
        job.event.connect(self._on_event)
        job.result.connect(self._on_result)
        job.error.connect(self._on_error)
        job.finished.connect(self._on_finished)
        self._jobs[job_id] = {"thread": thread, "job": job, "handle": handle,
                              "started": on_started, "progress": on_progress,
                              "event": on_event,
                              "result": on_result, "error": on_error,
                              "finished": on_finished}
        thread.start()
        return handle

    def start(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
              on_error: Callable[[str, str], None] | None = None) -> int:
        """A job that needs no context: ``fn()``; returns the job's id."""
        return self.run(lambda _ctx: fn(), on_result=on_done, on_error=on_error).job_id

    @property
    def busy(self) -> int:
        return sum(1 for e in self._jobs.values() if e["handle"].running)

    def handles(self) -> list[TaskHandle]:
        return [e["handle"] for e in self._jobs.values()]

    def _call(self, job_id: int, key: str, *args: Any) -> None:
        entry = self._jobs.get(job_id)
        if entry is not None and entry[key] is not None:
            entry[key](*args)

    @Slot(int)
    def _on_started(self, job_id: int) -> None:
        self._call(job_id, "started")

    @Slot(int, float, str)
    def _on_progress(self, job_id: int, fraction: float, text: str) -> None:
        self._call(job_id, "progress", fraction, text)

    @Slot(int, object)
    def _on_event(self, job_id: int, item: Any) -> None:
        self._call(job_id, "event", item)

    @Slot(int, object)
    def _on_result(self, job_id: int, result: Any) -> None:
        self._call(job_id, "result", result)

    @Slot(int, str, str)
    def _on_error(self, job_id: int, message: str, tb: str) -> None:
        self._call(job_id, "error", message, tb)

    @Slot(int)
    def _on_finished(self, job_id: int) -> None:
        entry = self._jobs.pop(job_id, None)
        if entry is None:
            return
        entry["handle"]._finished = True
        thread = entry["thread"]
        if not thread.wait(5_000):  # it quits right after emitting finished ...
            # ... but a busy machine can delay that: a QThread must never be destroyed
            # while it runs (Qt aborts), so it is kept until it has ended.
            self._ending.append(thread)
            thread.finished.connect(self._drop_ended)
        if entry["finished"] is not None:
            entry["finished"]()

    @Slot()
    def _drop_ended(self) -> None:
        self._ending = [t for t in self._ending if t.isRunning()]

    def close(self, timeout_ms: int = 30_000) -> bool:
        """At window close: start nothing more, ask running jobs to stop, join them."""
        self.closed = True
        self.cancel_all()
        return self.wait_all(timeout_ms)

    def cancel_all(self) -> None:
        for entry in list(self._jobs.values()):
            entry["handle"].cancel()

    def wait_all(self, timeout_ms: int = 30_000) -> bool:
        """Join every job's thread (at close). True when all ended in time."""
        ok = True
        for entry in list(self._jobs.values()):
            thread = entry["thread"]
            if thread.isRunning():
                ok = thread.wait(timeout_ms) and ok
        return ok
