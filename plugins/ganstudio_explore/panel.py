"""The Explore tab: a trained run's generator, its seeds, loops, projections and checks.

The tab follows the run the studio shows (``StudioAPI.run_changed``); its
checkpoint can be the newest, the best by KID, or any kept step. Loading and
all drawing run as studio background jobs; the views only show results.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPushButton, QTabWidget,
                               QVBoxLayout, QWidget)

from .checks import ChecksView
from .interpolate import InterpolationView
from .project import ProjectionView
from .seeds import SeedBrowser


class ExplorePanel(QWidget):
    """Header (run, checkpoint) above four views: Seeds, Interpolate, Project, Check."""

    #: the loaded Explorer, or None (no run, no checkpoint, no latent space)
    explorer_changed = Signal(object)
    #: the run's pins (explore.json) changed
    pins_changed = Signal()

    def __init__(self, studio: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.run: Path | None = None
        self.explorer = None
        self._handles: list = []
        self._load_job = None

        self.run_label = QLabel("No run open")
        self.run_label.setWordWrap(True)
        self.checkpoint = QComboBox()
        self.checkpoint.setToolTip("Which checkpoint to explore: the newest, the best by KID "
                                   "(measure it under Check), or a kept step")
        self.reload_button = QPushButton("Reload")
        self.reload_button.setToolTip("Read the run's checkpoints again (a running run "
                                      "writes new ones)")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("exploreMessage")

        top = QHBoxLayout()
        top.addWidget(self.run_label, 1)
        top.addWidget(QLabel("Checkpoint:"))
        top.addWidget(self.checkpoint)
        top.addWidget(self.reload_button)

        self.seeds = SeedBrowser(self)
        self.interpolation = InterpolationView(self)
        self.projection = ProjectionView(self)
        self.checks = ChecksView(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.seeds, "Seeds")
        self.tabs.addTab(self.interpolation, "Interpolate")
        self.tabs.addTab(self.projection, "Project")
        self.tabs.addTab(self.checks, "Check")

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.message)
        layout.addWidget(self.tabs, 1)

        self.checkpoint.activated.connect(lambda _i: self.load())
        self.reload_button.clicked.connect(self.refresh)
        studio.run_changed.connect(self.set_run)
        # a run that trains writes new checkpoints: list them (the loaded one stays)
        studio.runs_changed.connect(self._fill_checkpoints)
        self.set_run(studio.current_run())

    # -- run and checkpoint ---------------------------------------------------------------------
    def set_run(self, path: Any) -> None:
        new = Path(path) if path is not None else None
        if new == self.run and self.explorer is not None:
            return
        self.run = new
        self.refresh()

    def refresh(self) -> None:
        """Refill the checkpoint list from the run folder and load the chosen one."""
        if self.run is None:
            self.checkpoint.clear()
            self.run_label.setText("No run open: open or start one in the Training or Runs tab")
            self._set_explorer(None, "")
            return
        self.run_label.setText(f"Run: <b>{self.run.name}</b>")
        self._fill_checkpoints()
        self.load()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._fill_checkpoints()
        if self.run is not None and self.explorer is None and not self.busy():
            self.load()    # e.g. the run had no checkpoint when it was opened

    def choose_checkpoint(self, which: Any) -> None:
        """Select ``which`` ("last", "best" or a step) and load it."""
        self._fill_checkpoints()
        index = self.checkpoint.findData(which)
        if index >= 0:
            self.checkpoint.setCurrentIndex(index)
            self.load()

    def _fill_checkpoints(self) -> None:
        from ganstudio.core.explore_state import checkpoint_steps, read_state
        if self.run is None:
            return
        which = self.checkpoint.currentData()
        self.checkpoint.blockSignals(True)
        try:
            self.checkpoint.clear()
            self.checkpoint.addItem("newest", "last")
            best = read_state(self.run).get("best_step")
            if best is not None:
                self.checkpoint.addItem(f"best by KID (step {best})", "best")
            for step in reversed(checkpoint_steps(self.run)):
                self.checkpoint.addItem(f"step {step}", step)
            index = self.checkpoint.findData(which) if which is not None else -1
            self.checkpoint.setCurrentIndex(max(index, 0))
        finally:
            self.checkpoint.blockSignals(False)

    def load(self) -> None:
        """Load the chosen checkpoint's generator in the background."""
        if self.run is None:
            return
        from ganstudio.core.latents import load_explorer
        run, which = self.run, self.checkpoint.currentData() or "last"
        pm, device = self.studio.plugin_manager(), self.device()
        self.message.setText("Loading the generator…")

        def work(_ctx):
            return run, load_explorer(run, pm, device, which)

        def done(result):
            loaded_run, explorer = result
            if loaded_run == self.run:
                self._set_explorer(explorer, "")

        def failed(message, _tb):
            if run == self.run:
                self._set_explorer(None, message)

        self._load_job = self.task(work, on_result=done, on_error=failed)

    def device(self) -> Any:
        from ganstudio.core.devices import pick_device
        try:
            return pick_device(self.studio.device(), precision="fp32").device
        except Exception:  # an unusable choice: the explorer still works on the CPU
            return "cpu"

    def _set_explorer(self, explorer: Any, message: str) -> None:
        self.explorer = explorer
        if explorer is not None:
            c, h, w = explorer.image_shape()
            self.message.setText(
                f"{explorer.spec.name}, step {explorer.step}: {w}×{h} images, "
                f"{explorer.dim}-dimensional {explorer.distribution} latents")
        else:
            self.message.setText(message)
        self.explorer_changed.emit(explorer)

    # -- background jobs ------------------------------------------------------------------------
    def task(self, fn, **callbacks) -> Any:
        """``studio.run_task`` with the handle kept, so closing the tab cancels it."""
        handle = self.studio.run_task(fn, **callbacks)
        self._handles = [h for h in self._handles if h.running] + [handle]
        return handle

    def busy(self) -> bool:
        return any(h.running for h in self._handles)

    def shutdown(self) -> None:
        """Called by the studio at close: cancel what runs (the studio joins the threads)."""
        for h in self._handles:
            h.cancel()
