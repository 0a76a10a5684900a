"""The studio's public panel API: what a plugin's tab may use.

A plugin offers a tab through the ``ganstudio_studio_panels()`` hook, returning
``ganstudio.panels.PanelSpec(id, title, factory, order)``. The studio calls
``factory(studio)`` in the GUI thread with a :class:`StudioAPI` and adds the
returned QWidget as a tab. A panel widget may define ``shutdown(self)``: it is
called when the window closes, before the studio's threads are joined.

Panels use only this object: the current run, the runs folder, the plugin
manager, the chosen device, background jobs (:meth:`StudioAPI.run_task`, the
same worker pattern the studio uses for its own jobs), status messages and
opening a run in the Training view. They never reach into the window's widgets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from .tasks import TaskContext, TaskHandle, Tasks

__all__ = ["StudioAPI", "TaskContext", "TaskHandle", "STATUS_LEVELS"]

STATUS_LEVELS = ("info", "warning", "error")


class StudioAPI(QObject):
    """The studio as a panel sees it.

    ``run_changed(path | None)``: the run the studio shows now changed (opened,
    started, watched). ``runs_changed()``: a run folder was created, renamed or
    finished.

    The window behind it is reached through a small set of callables (``host``),
    so this object stays the only door and the window can change freely.
    """

    run_changed = Signal(object)
    runs_changed = Signal()

    def __init__(self, window: QWidget, tasks: Tasks, *,
                 current_run: Callable[[], Path | None],
                 runs_root: Callable[[], Path],
                 plugin_manager: Callable[[], Any],
                 device: Callable[[], str],
                 show_status: Callable[[str, str], None],
                 open_run: Callable[[Any], Any]):
        super().__init__(window)
        self.window = window
        self._tasks = tasks
        self._current_run = current_run
        self._runs_root = runs_root
        self._plugin_manager = plugin_manager
        self._device = device
        self._show_status = show_status
        self._open_run = open_run

    def current_run(self) -> Path | None:
        run = self._current_run()
        return Path(run) if run is not None else None

    def runs_root(self) -> Path:
        return Path(self._runs_root())

    def plugin_manager(self) -> Any:
        return self._plugin_manager()

    def device(self) -> str:
        """The studio's Device choice, e.g. ``"auto"``, ``"cpu"``, ``"cuda:0"``."""
        return str(self._device())

    def run_task(self, fn: Callable[[TaskContext], Any], *,
                 on_result: Callable[[Any], None] | None = None,
                 on_error: Callable[[str, str], None] | None = None,
                 on_progress: Callable[[float, str], None] | None = None,
                 on_finished: Callable[[], None] | None = None) -> TaskHandle:
        """Run ``fn(ctx)`` on a studio background thread (tracked, joined at close).

        ``on_progress(fraction, text)``, ``on_result(result)``,
        ``on_error(message, traceback_text)`` and ``on_finished()`` are called in
        the GUI thread; ``UserError`` messages arrive as they are.
        """
        return self._tasks.run(fn, on_result=on_result, on_error=on_error,
                               on_progress=on_progress, on_finished=on_finished,
                               name="panel-task")

    def show_status(self, text: str, level: str = "info") -> None:
        """Tell the user something: ``"info"`` in the status bar, ``"warning"`` and
        ``"error"`` in the window's message strip."""
        if level not in STATUS_LEVELS:
            raise ValueError(f"level must be one of {', '.join(STATUS_LEVELS)}, not {level!r}")
        self._show_status(str(text), level)

    def open_run(self, path: Any) -> None:
        """Show this run in the Training view."""
        self._open_run(Path(path))
