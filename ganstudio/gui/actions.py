"""The window's actions, toolbar, menus and keyboard shortcuts."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QToolBar

from .theme import THEMES, icon

SHORTCUTS = {
    "start": "F5",
    "pause": "F6",
    "resume": "F7",
    "stop": "Shift+F5",
    "checkpoint": "Ctrl+S",
}

TRAINING_KEYS = ("start", "pause", "resume", "stop", "checkpoint")


def shortcuts_html() -> str:
    """The Help > Keyboard shortcuts text: a two-column table (spaces do not line up in a
    proportional font)."""
    rows = "".join(f"<tr><td>{k.capitalize()}</td><td style='padding-left:16px'><b>{v}</b>"
                   "</td></tr>" for k, v in SHORTCUTS.items())
    return f"<table>{rows}</table>"


def make_action(parent, key: str, text: str, slot: Callable[[], object], tip: str,
                icon_name: str | None = None) -> QAction:
    a = QAction(icon(icon_name or key), text, parent)
    a.setObjectName(f"action_{key}")
    if key in SHORTCUTS:
        a.setShortcut(QKeySequence(SHORTCUTS[key]))
        tip = f"{tip} ({SHORTCUTS[key]})"
    a.setToolTip(tip)
    a.setStatusTip(tip)
    a.triggered.connect(lambda _=False: slot())
    return a


class WindowActions:
    """Builds the toolbar and menus of ``win`` from the slots it is given.

    ``slots`` maps each action key to its callable: start, start_from, pause, resume, stop,
    checkpoint, export, open_data, demo, open_run, watch_run, theme (name -> None).
    """

    def __init__(self, win: QMainWindow, slots: dict[str, Callable], docks: list):
        self.win = win
        mk = lambda *a: make_action(win, *a)  # noqa: E731
        self.by_key = {
            "start": mk("start", "Start", slots["start"], "Start training"),
            "pause": mk("pause", "Pause", slots["pause"], "Pause training"),
            "resume": mk("resume", "Resume", slots["resume"], "Resume training"),
            "stop": mk("stop", "Stop", slots["stop"], "Stop training and save a checkpoint"),
            "checkpoint": mk("checkpoint", "Checkpoint now", slots["checkpoint"],
                             "Write a checkpoint now"),
            "export": mk("export", "Export…", slots["export"],
                         "Export grids, samples, a time-lapse or the generator"),
        }
        tb = QToolBar("Controls")
        tb.setObjectName("controlsToolbar")
        tb.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        tb.setMovable(False)
        for key in TRAINING_KEYS:
            tb.addAction(self.by_key[key])
        tb.addSeparator()
        tb.addAction(self.by_key["export"])
        win.addToolBar(Qt.TopToolBarArea, tb)
        self.toolbar = tb
        self.buttons = {k: tb.widgetForAction(a) for k, a in self.by_key.items()}
        for key, button in self.buttons.items():
            button.setObjectName(f"button_{key}")

        # Menu only: the run it starts from is the one selected in the Runs tab.
        self.by_key["start_from"] = mk(
            "start_from", "Start from run…", slots["start_from"],
            "Start a new run from the network weights of the run selected in the Runs tab "
            "(fine-tuning)", "start")

        menu = win.menuBar()
        f = menu.addMenu("&File")
        f.addAction(mk("open_data", "Open image folder…", slots["open_data"],
                       "Choose the folder of training images", "folder"))
        f.addAction(mk("demo", "Use demo images", slots["demo"],
                       "Train on the bundled demo dataset", "folder"))
        f.addAction(mk("open_run", "Open run folder…", slots["open_run"],
                       "Show a past run's charts and grids", "folder"))
        f.addAction(mk("watch_run", "Watch run folder…", slots["watch_run"],
                       "Follow a run written by another process", "folder"))
        f.addAction(self.by_key["export"])
        f.addSeparator()
        quit_action = QAction("Quit", win)
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(win.close)
        f.addAction(quit_action)
        t = menu.addMenu("&Training")
        for key in TRAINING_KEYS:
            t.addAction(self.by_key[key])
            if key == "start":
                t.addAction(self.by_key["start_from"])
        v = menu.addMenu("&View")
        for dock in docks:
            v.addAction(dock.toggleViewAction())
        v.addSeparator()
        self.theme_actions: dict[str, QAction] = {}
        group = QActionGroup(win)
        for name in THEMES:
            a = QAction(f"{name.capitalize()} theme", win, checkable=True)
            a.triggered.connect(lambda _=False, n=name: slots["theme"](n))
            group.addAction(a)
            v.addAction(a)
            self.theme_actions[name] = a
        h = menu.addMenu("&Help")
        curves = QAction("Reading the curves", win)
        curves.setObjectName("helpCurves")
        self.curves_help = None
        curves.triggered.connect(self.show_curves_help)
        h.addAction(curves)
        self.curves_action = curves
        about = QAction("Keyboard shortcuts", win)
        about.triggered.connect(self.show_shortcuts)
        h.addAction(about)

    def show_curves_help(self) -> None:
        from .metric_help import CurvesHelp
        if self.curves_help is None:
            self.curves_help = CurvesHelp(self.win)
        self.curves_help.show()
        self.curves_help.raise_()

    def show_shortcuts(self) -> None:
        box = QMessageBox(QMessageBox.Information, "Keyboard shortcuts", shortcuts_html(),
                          QMessageBox.Ok, self.win)
        box.setTextFormat(Qt.RichText)
        box.exec()

    def update(self, state: str, ready: bool, has_run: bool) -> None:
        """Enable what the training state allows."""
        a = self.by_key
        a["start"].setEnabled(state == "idle" and ready)
        a["start_from"].setEnabled(state == "idle" and ready)
        a["pause"].setEnabled(state == "running")
        a["resume"].setEnabled(state == "paused")
        a["stop"].setEnabled(state in ("preparing", "running", "paused"))
        a["checkpoint"].setEnabled(state in ("running", "paused"))
        a["export"].setEnabled(has_run)
