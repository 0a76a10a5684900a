"""Checks of a trained run: memorisation (nearest training images) and the best
checkpoint by KID, plotted, with the best marked and kept through rotation."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QSpinBox, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from .views import ImageView


class ChecksView(QWidget):
    def __init__(self, panel: Any):
        super().__init__()
        self.panel = panel
        # memorisation
        self.mem_samples = QSpinBox()
        self.mem_samples.setRange(2, 10_000)
        self.mem_samples.setValue(256)
        self.mem_feature = QComboBox()
        self.mem_feature.addItem("downscaled pixels", "pixels")
        self.mem_feature.addItem("random conv features", "random")
        self.mem_button = QPushButton("Check for copies")
        self.mem_summary = QLabel("Compares generated samples with the training images: a "
                                  "model that copies makes samples closer to a training image "
                                  "than training images are to each other.")
        self.mem_summary.setWordWrap(True)
        self.mem_view = ImageView(280)
        self.mem_view.setToolTip("The closest pairs: each sample left of its nearest training "
                                 "image")
        # best checkpoint
        self.kid_samples = QSpinBox()
        self.kid_samples.setRange(8, 5000)
        self.kid_samples.setValue(256)
        self.kid_button = QPushButton("Measure KID of each checkpoint")
        self.kid_cancel = QPushButton("Cancel")
        self.kid_cancel.setEnabled(False)
        self.kid_progress = QProgressBar()
        self.kid_progress.setRange(0, 1000)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Step", "KID", ""])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.use_best = QPushButton("Explore the best")
        self.keep_button = QPushButton("Keep selected checkpoint")
        self.keep_button.setToolTip("Protect the selected checkpoint from rotation (besides "
                                    "the last N and the best)")
        self.kid_label = QLabel("")
        self.kid_label.setWordWrap(True)
        self.plot = self._make_plot()

        mem = QGroupBox("Memorisation")
        ml = QVBoxLayout(mem)
        row = QHBoxLayout()
        row.addWidget(QLabel("Samples:"))
        row.addWidget(self.mem_samples)
        row.addWidget(QLabel("Distance on:"))
        row.addWidget(self.mem_feature)
        row.addStretch(1)
        ml.addLayout(row)
        ml.addWidget(self.mem_button, 0, Qt.AlignLeft)
        ml.addWidget(self.mem_summary)
        ml.addWidget(self.mem_view)

        best = QGroupBox("Best checkpoint")
        bl = QVBoxLayout(best)
        row = QHBoxLayout()
        row.addWidget(QLabel("Samples per checkpoint:"))
        row.addWidget(self.kid_samples)
        row.addStretch(1)
        bl.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.kid_button)
        row.addWidget(self.kid_cancel)
        row.addStretch(1)
        bl.addLayout(row)
        bl.addWidget(self.kid_progress)
        bl.addWidget(self.table, 1)
        if self.plot is not None:
            bl.addWidget(self.plot, 2)
        row = QHBoxLayout()
        row.addWidget(self.use_best)
        row.addWidget(self.keep_button)
        row.addStretch(1)
        bl.addLayout(row)
        bl.addWidget(self.kid_label)

        layout = QHBoxLayout(self)
        layout.addWidget(mem, 1)
        layout.addWidget(best, 1)

        self.kid_handle = None
        self.mem_button.clicked.connect(self.check_memorisation)
        self.kid_button.clicked.connect(self.measure_kid)
        self.kid_cancel.clicked.connect(lambda: self.kid_handle and self.kid_handle.cancel())
        self.use_best.clicked.connect(lambda: panel.choose_checkpoint("best"))
        self.keep_button.clicked.connect(self.keep_selected)
        panel.explorer_changed.connect(self._explorer_changed)
        self._explorer_changed(None)

    def _make_plot(self) -> Any:
        try:
            import pyqtgraph as pg
        except ImportError:  # the studio depends on it; the table alone still works
            return None
        plot = pg.PlotWidget()
        plot.setLabel("bottom", "step")
        plot.setLabel("left", "KID (lower is better)")
        plot.setMinimumHeight(160)
        self.curve = plot.plot([], [], pen=pg.mkPen("#4aa3ff", width=2), symbol="o",
                               symbolSize=6)
        self.best_marker = plot.plot([], [], pen=None, symbol="star", symbolSize=16,
                                     symbolBrush="#ffcc00")
        return plot

    def _explorer_changed(self, explorer: Any) -> None:
        on = explorer is not None
        self.mem_button.setEnabled(on)
        self.kid_button.setEnabled(on and not (self.kid_handle and self.kid_handle.running))
        self.show_scores()

    # -- memorisation ----------------------------------------------------------------------------
    def check_memorisation(self) -> None:
        from ganstudio.core.memorisation import pairs_grid, run_nearest_check
        run, pm = self.panel.run, self.panel.studio.plugin_manager()
        n, feature = self.mem_samples.value(), self.mem_feature.currentData()
        which, device = self.panel.checkpoint.currentData() or "last", self.panel.device()
        self.mem_button.setEnabled(False)
        self.mem_summary.setText("Comparing…")

        def work(_ctx):
            result, samples, train = run_nearest_check(run, pm, n, feature=feature,
                                                       device=device, checkpoint=which)
            return result, pairs_grid(samples, train, result, n=16)

        def done(out):
            result, grid = out
            self.mem_view.show_image(grid)
            verdict = ("no sign of copying" if result.closer == 0 else
                       "look at the closest pairs: the model may copy training images")
            self.mem_summary.setText(
                f"<b>{result.closer} of {result.n_samples}</b> samples closer to a training "
                f"image than training images are to each other ({result.n_train} training "
                f"images): {verdict}. Noted in the run's events.log.")

        self.panel.task(work, on_result=done,
                        on_error=lambda m, _t: self.mem_summary.setText(m),
                        on_finished=lambda: self.mem_button.setEnabled(
                            self.panel.explorer is not None))

    # -- KID per checkpoint ----------------------------------------------------------------------
    def measure_kid(self) -> None:
        from ganstudio.core.best import score_checkpoints
        if self.kid_handle is not None and self.kid_handle.running:
            return
        run, pm = self.panel.run, self.panel.studio.plugin_manager()
        n, device = self.kid_samples.value(), self.panel.device()

        def work(ctx):
            return score_checkpoints(
                run, pm, n_samples=n, device=device, cancelled=ctx.cancelled,
                progress=lambda d, total, step: ctx.progress(d / total, f"step {step}"))

        self.kid_button.setEnabled(False)
        self.kid_cancel.setEnabled(True)
        self.kid_progress.setValue(0)
        self.kid_label.setText("Measuring…")
        self.kid_handle = self.panel.task(
            work, on_result=self._scored, on_error=lambda m, _t: self.kid_label.setText(m),
            on_progress=lambda f, t: self.kid_progress.setValue(int(f * 1000)),
            on_finished=self._kid_finished)

    def _scored(self, scores: Any) -> None:
        note = " (cancelled: the checkpoints measured so far count)" if scores.cancelled else ""
        skipped = (f"; {len(scores.skipped)} checkpoint(s) could not be read"
                   if scores.skipped else "")
        self.kid_label.setText(f"Best: step {scores.best_step} ({scores.features} features); "
                               f"kept through checkpoint rotation{skipped}{note}")
        self.panel._fill_checkpoints()
        self.show_scores()

    def _kid_finished(self) -> None:
        self.kid_button.setEnabled(self.panel.explorer is not None)
        self.kid_cancel.setEnabled(False)

    def show_scores(self) -> None:
        """The run's measured KIDs (explore.json) in the table and the plot."""
        from ganstudio.core.explore_state import read_state
        state = read_state(self.panel.run) if self.panel.run else {"kid": {}, "best_step": None}
        kid = sorted((int(k), v) for k, v in state["kid"].items())
        best = state.get("best_step")
        pinned = set(state.get("pinned_checkpoints") or [])
        self.table.setRowCount(len(kid))
        for row, (step, value) in enumerate(kid):
            marks = []
            if step == best:
                marks.append("★ best")
            if step in pinned:
                marks.append("kept")
            for col, text in enumerate((str(step), f"{value:.5f}", ", ".join(marks))):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, step)
                self.table.setItem(row, col, item)
        self.use_best.setEnabled(best is not None)
        if self.plot is not None:
            self.curve.setData([s for s, _v in kid], [v for _s, v in kid])
            self.best_marker.setData([s for s, _v in kid if s == best],
                                     [v for s, v in kid if s == best])

    def keep_selected(self) -> None:
        from ganstudio.core.errors import UserError
        from ganstudio.core.explore_state import set_checkpoint_pinned
        rows = {i.row() for i in self.table.selectedItems()}
        if not rows or self.panel.run is None:
            return
        try:
            for row in rows:
                set_checkpoint_pinned(self.panel.run, self.table.item(row, 0).data(Qt.UserRole))
        except UserError as e:
            self.kid_label.setText(str(e))
        self.show_scores()
