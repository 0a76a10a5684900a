"""The main window's tabs: the studio's own and those plugins offer.

Tabs are kept sorted by their order (Training 0, Runs 10, plugin panels by their
``PanelSpec.order``); a plugin's panel sits in a scroll area. A plugin whose hook fails, or whose factory raises, costs
only its own tab: the reason is kept in :attr:`PanelHost.problems` and said in
one line, never as a traceback.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

from PySide6.QtWidgets import QFrame, QScrollArea, QTabWidget, QWidget

from .tasks import error_text


def scrollable(widget: QWidget) -> QScrollArea:
    """A plugin's panel inside a scroll area: however large its minimum size, the window
    still fits a laptop screen (the panel scrolls instead)."""
    scroll = QScrollArea()
    scroll.setObjectName("panelScroll")
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setWidget(widget)
    return scroll


class PanelHost:
    """Adds tabs to a QTabWidget in order and calls panels' ``shutdown()`` at close."""

    def __init__(self, tabs: QTabWidget, report: Callable[[str], None] | None = None):
        self.tabs = tabs
        self.report = report
        self._orders: list[tuple[int, QWidget]] = []   # (order, tab widget)
        self.panels: dict[str, QWidget] = {}           # panel id -> the factory's widget
        self.problems: list[tuple[str, str]] = []      # (plugin or tab title, reason)

    def add_tab(self, widget: QWidget, title: str, order: int) -> int:
        """Insert ``widget`` after every tab whose order is not larger; its index."""
        self._orders = [(o, w) for o, w in self._orders if self.tabs.indexOf(w) >= 0]
        index = max((self.tabs.indexOf(w) for o, w in self._orders if o <= order),
                    default=-1) + 1
        self._orders.append((order, widget))
        return self.tabs.insertTab(index, widget, title)

    def add_plugin_panels(self, pm: Any, studio: Any) -> list[str]:
        """Build each offered panel; the ids of the tabs added."""
        try:
            specs, problems = pm.panels()
        except Exception as e:  # noqa: BLE001 - a plugin manager without panels
            specs, problems = [], [("plugins", error_text(e))]
        for name, reason in problems:
            self._problem(name, f"plugin '{name}' offers no studio tab: {reason}")
        for name, info in getattr(pm, "plugins", {}).items():
            if getattr(info, "status", "ok") in ("blocked", "error"):
                # a plugin that did not load cannot offer its tabs: say so, not silently
                self._problem(name, f"plugin '{name}' is not loaded ({info.error}): its "
                                    "models and studio tabs are not available")
        added = []
        for spec in specs:
            if spec.id in self.panels:
                continue
            try:
                widget = spec.factory(studio)
                if not isinstance(widget, QWidget):
                    raise TypeError(f"the panel factory returned {type(widget).__name__}, "
                                    "not a QWidget")
            except Exception as e:  # noqa: BLE001 - a broken panel costs its tab only
                self._problem(spec.title, f"the “{spec.title}” tab is unavailable: "
                                          f"{error_text(e)}")
                continue
            self.panels[spec.id] = widget
            self.add_tab(scrollable(widget), spec.title, spec.order)
            added.append(spec.id)
        return added

    def _problem(self, name: str, message: str) -> None:
        self.problems.append((name, message))
        print(f"GAN Studio: {message}", file=sys.stderr)
        if self.report is not None:
            self.report(message)

    def shutdown(self) -> None:
        """Call each panel's ``shutdown()``; one that raises does not stop the others."""
        for panel_id, widget in list(self.panels.items()):
            fn = getattr(widget, "shutdown", None)
            if callable(fn):
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - closing must go on
                    print(f"GAN Studio: panel '{panel_id}' failed to shut down: "
                          f"{error_text(e)}", file=sys.stderr)
