"""Python's cyclic garbage collector, run in the GUI thread only.

Python collects reference cycles in whichever thread happens to allocate when a
generation fills up. In the studio that is often a background thread (a
dataset being read, a training step). If the cycle holds a widget (a closed
dialog, a panel with a lambda pointing back at it), Qt would then destroy that
widget outside the GUI thread, which corrupts Qt's own list of widgets and
crashes the studio later, somewhere unrelated (a theme change, an event).

:class:`GuiThreadCollector` turns the automatic collector off and runs it from a
timer in the GUI thread instead, with the same thresholds Python uses, so a
cycle is only ever freed there. :func:`install` starts one per application;
it stops, and the automatic collector is back, when the application quits.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

#: How often the GUI thread looks at the collector's counts.
INTERVAL_MS = 250


class GuiThreadCollector(QObject):
    """Collect reference cycles from a GUI-thread timer, never from other threads."""

    def __init__(self, interval_ms: int = INTERVAL_MS, parent: QObject | None = None):
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.collections = 0
        self._was_enabled = gc.isenabled()

    @property
    def active(self) -> bool:
        return self.timer.isActive()

    def start(self) -> None:
        if not self.active:
            self._was_enabled = gc.isenabled()
            gc.disable()
            self.timer.start()

    def stop(self) -> None:
        """Back to Python's automatic collector (as it was before :meth:`start`)."""
        if self.active:
            self.timer.stop()
            if self._was_enabled:
                gc.enable()

    def check(self) -> None:
        """Collect the generations that are over their threshold, as Python would."""
        counts = gc.get_count()
        if counts[0] <= self.thresholds[0]:
            return
        generation = 0
        for g in (2, 1):
            if counts[g] > self.thresholds[g]:
                generation = g
                break
        gc.collect(generation)
        self.collections += 1


def install(app: QCoreApplication | None = None) -> GuiThreadCollector | None:
    """Start the application's collector (once); ``None`` without an application."""
    app = app or QCoreApplication.instance()
    if app is None:
        return None
    collector = getattr(app, "_ganstudio_collector", None)
    if collector is None:
        collector = GuiThreadCollector(parent=app)
        app.aboutToQuit.connect(collector.stop)
        app._ganstudio_collector = collector
    collector.start()
    return collector


def installed(app: QCoreApplication | None = None) -> GuiThreadCollector | None:
    """The application's collector, if :func:`install` made one."""
    app = app or QCoreApplication.instance()
    return getattr(app, "_ganstudio_collector", None) if app is not None else None
