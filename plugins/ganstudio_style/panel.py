"""The studio's "Style transfer" tab, offered by the style plugin through
``ganstudio_studio_panels`` and built against the studio's public panel API
(:class:`ganstudio.gui.panel_api.StudioAPI`). Loaded only by the studio.

Two pages share one before/after view, one progress line and one chart:

* **Repaint** (:mod:`.panel_repaint`): content and style pictures, settings,
  an estimate of the time on this device, Start / Stop (the best picture so
  far is kept);
* **Fast network** (:mod:`.panel_fast`): train a feed-forward network for one
  style on a folder; apply a trained one to pictures or folders; export it.

Every job runs in a studio background task (:meth:`StudioAPI.run_task`);
engine events reach this tab through the job's inbox (:mod:`.jobs`), drained
by a timer in the GUI thread.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QSlider, QSplitter, QTabWidget, QVBoxLayout,
                               QWidget)

from ganstudio.core import events as ev
from ganstudio.core.errors import ConfigError, UserError
from ganstudio.gui.chart import MetricsChart
from ganstudio.gui.grid import array_to_qimage
from ganstudio.gui.theme import current_theme

from . import estimate
from .jobs import JobOutcome, StyleJob
from .panel_estimate import Estimator
from .panel_fast import FastPage
from .panel_repaint import RepaintPage
from .panel_weights import WeightsBox
from .panel_widgets import CompareView, dropped_paths, is_image, scrolled, sentence
from .tools import apply_network, export_network_onnx, save_picture

LOSS_KEYS = ("loss", "content", "style", "tv")


def own_specs(pm: Any) -> tuple[Any, Any]:
    """This plugin's (optimisation spec, feed-forward spec), as the plugin manager has them."""
    from .fast import MODEL_ID as FAST_ID
    from .gatys import MODEL_ID

    def find(model_id: str) -> Any:
        try:
            return pm.get_model(model_id)
        except UserError:
            return None
    return find(MODEL_ID), find(FAST_ID)


class StylePanel(QWidget):
    """The Style transfer tab. ``studio`` is the studio's :class:`StudioAPI`."""

    jobStarted = Signal(str)        # model id
    jobFinished = Signal(str)       # "completed", "stopped" or "failed"
    resultReady = Signal()
    applyFinished = Signal(int)     # pictures written (-1 on error)
    exportFinished = Signal(str)    # the file written ("" on error)
    message = Signal(str)           # every status line shown

    def __init__(self, studio: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.pm = studio.plugin_manager()
        self.spec, self.fast_spec = own_specs(self.pm)
        if self.spec is None:
            raise UserError("the style plugin's models did not load (see 'Plugins' in Help)")
        self.job: StyleJob | None = None
        self.handle: Any = None
        self.other_tasks: list[Any] = []
        self.result: np.ndarray | None = None
        self.run_dir: Path | None = None
        self._temp_run: Path | None = None
        self._outcome: JobOutcome | None = None
        self._build()
        self._apply_device_defaults()
        self._drain_timer = QTimer(self)
        self._drain_timer.setInterval(100)
        self._drain_timer.timeout.connect(self._drain)

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.weights = WeightsBox(self.studio)
        self.weights.message.connect(self._say)
        self.weights.changed.connect(self._on_weights_changed)
        self.repaint = RepaintPage(self.spec)
        self.repaint.contentChosen.connect(self._show_before)
        self.repaint.startRequested.connect(self.start)
        self.repaint.stopRequested.connect(self.stop)
        self.repaint.message.connect(self._say)
        self.repaint_estimate = Estimator(
            self.studio, self.repaint.estimate, self._repaint_settings,
            lambda c, s: estimate.gatys_seconds(c, s, self.repaint.content_aspect),
            lambda c: f"{c['size']} px, {c['iterations']} iterations",
            "A smaller size or fewer iterations finish sooner.", self)
        self.repaint.settingsChanged.connect(self.repaint_estimate.schedule)
        self.modes = QTabWidget()
        repaint_tab = QWidget()
        rl = QVBoxLayout(repaint_tab)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(scrolled(self.repaint), 1)
        rl.addWidget(self.repaint.footer)
        self.modes.addTab(repaint_tab, "Repaint")
        self.fast: FastPage | None = None
        if self.fast_spec is not None:
            self.fast = FastPage(self.fast_spec)
            self.fast.trainRequested.connect(self.start_fast_training)
            self.fast.stopRequested.connect(self.stop)
            self.fast.applyRequested.connect(self.apply_network)
            self.fast.exportRequested.connect(self._export_dialog)
            self.fast_estimate = Estimator(
                self.studio, self.fast.estimate, self.fast.form.values,
                lambda c, s: estimate.fast_seconds(c, self.fast.steps.value(), s),
                lambda c: f"{self.fast.steps.value()} steps of {c['batch_size']} at "
                          f"{c['resolution']} px",
                "Fewer steps or a smaller resolution finish sooner.", self)
            self.fast.settingsChanged.connect(self.fast_estimate.schedule)
            self.fast_scroll = scrolled(self.fast)
            self.modes.addTab(self.fast_scroll, "Fast network")
        self.modes.currentChanged.connect(lambda _i: self._estimator().schedule())

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.modes, 1)
        ll.addWidget(self.weights)

        self.compare = CompareView()
        self.split_slider = QSlider(Qt.Horizontal)
        self.split_slider.setRange(0, 100)
        self.split_slider.setToolTip("Drag to compare: original on the left, result on the right")
        self.split_slider.valueChanged.connect(lambda v: self.compare.set_split(v / 100))
        self.save_button = QPushButton("Save result…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.status = QLabel("Choose a content picture and a style picture.")
        self.status.setWordWrap(True)
        comp_row = QHBoxLayout()
        comp_row.addWidget(QLabel("Before"))
        comp_row.addWidget(self.split_slider, 1)
        comp_row.addWidget(QLabel("After"))
        comp_row.addWidget(self.save_button)
        self.chart = MetricsChart()
        self.chart.apply_theme(current_theme())
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.compare, 1)
        tl.addLayout(comp_row)
        tl.addWidget(self.progress)
        tl.addWidget(self.status)
        right = QSplitter(Qt.Vertical)
        right.addWidget(top)
        right.addWidget(self.chart)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)   # the studio scrolls the whole tab on a small screen
        self.setAcceptDrops(True)

    def _apply_device_defaults(self) -> None:
        """Smaller settings on a CPU (the schema's defaults take tens of minutes there)."""
        try:
            device = self.repaint_estimate.device()
        except UserError as e:
            self._say(str(e))
            return
        self.repaint.form.set_values(estimate.gatys_defaults(device))
        if self.fast is not None:
            values, steps = estimate.fast_defaults(device)
            self.fast.form.set_values(values)
            self.fast.steps.setValue(steps)

    def _estimator(self) -> Estimator:
        if self.fast is not None and self.modes.currentIndex() == 1:
            return self.fast_estimate
        return self.repaint_estimate

    def showEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().showEvent(event)
        if self._estimator().last_seconds is None:
            self._estimator().schedule()

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() == QEvent.PaletteChange:
            # the chart follows the studio's theme; the palette changes first, before the
            # theme's name is recorded, so the name is read from the palette itself
            dark = self.palette().window().color().lightness() < 128
            self.chart.apply_theme("dark" if dark else "light")

    # -- inputs (the pages hold them; these are the tab's shortcuts) -------------------------
    def set_content(self, path: str) -> None:
        self.repaint.set_content(path)

    def add_style(self, path: str, weight: float = 1.0) -> None:
        self.repaint.add_style(path, weight)

    def _show_before(self, path: str) -> None:
        img = QImage(path)
        self.compare.set_before(None if img.isNull() else img)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if any(is_image(p) for p in dropped_paths(event)):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        """Dropped on the tab: the first picture is the content if none yet, others styles."""
        for p in (p for p in dropped_paths(event) if is_image(p)):
            if self.repaint.content_path is None:
                self.set_content(p)
            else:
                self.add_style(p)
        event.acceptProposedAction()

    def _on_weights_changed(self, found: bool) -> None:
        if found:
            self.repaint.notice.clear()
            if self.fast is not None:
                self.fast.notice.clear()

    def _weights_ready(self, page: Any) -> bool:
        """True when VGG-19 weights are found; otherwise say so next to ``page``'s button."""
        if self.weights.refresh():
            return True
        actions = [("Browse…", self.weights.choose_file)]
        if self.weights.status.downloadable:
            actions.insert(0, ("Download…", self.weights.start_download))
        self._notify(page.notice, self.weights.needed_text(), *actions)
        self._say(self.weights.needed_text())
        return False

    # -- running -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.running

    def _repaint_settings(self) -> dict:
        return self.repaint.form.values()

    def start(self) -> bool:
        """Start the optimisation; False (and a message next to Start) if something is missing."""
        if self.running:
            return False
        try:
            overrides = self.repaint.overrides(self.weights.explicit())
        except (UserError, ConfigError) as e:
            self._notify(self.repaint.notice, sentence(str(e)))
            self._say(str(e))
            return False
        if not self._weights_ready(self.repaint):
            return False
        self.repaint.notice.clear()
        self._remove_temp_run()
        self.run_dir = self._temp_run = Path(tempfile.mkdtemp(prefix="ganstudio-style-"))
        settings = dict(total_steps=int(overrides["iterations"]), device=self.studio.device(),
                        precision="fp32", on_nan="stop", checkpoint_every_s=0.0,
                        sample_every_steps=int(self.repaint.preview_every.value()),
                        n_samples=1, keep_checkpoints=1)
        self.result = None
        self.save_button.setEnabled(False)
        self.compare.set_after(None)
        self._launch(StyleJob(self.spec, self.run_dir, overrides=overrides, settings=settings,
                              plugin_manager=self.pm, unit="iteration"), self.repaint)
        return True

    def start_fast_training(self) -> bool:
        if self.running or self.fast is None:
            return False
        try:
            overrides, data, run_dir, steps = self.fast.training(self.weights.explicit())
        except (UserError, ConfigError) as e:
            self._notify(self.fast.notice, sentence(str(e)))
            self._say(str(e))
            return False
        if not self._weights_ready(self.fast):
            return False
        self.fast.notice.clear()
        settings = dict(total_steps=steps, device=self.studio.device(), on_nan="stop",
                        sample_every_s=5.0, checkpoint_every_s=120.0, n_samples=16)
        self.run_dir = run_dir
        self.compare.set_before(None)
        self._launch(StyleJob(self.fast_spec, run_dir, overrides=overrides, settings=settings,
                              plugin_manager=self.pm, data_folder=data, unit="step"), self.fast)
        return True

    def _launch(self, job: StyleJob, page: Any) -> None:
        self.chart.clear()
        self.job, self._page, self._outcome = job, page, None
        self._set_running(True)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.progress.setVisible(True)
        self._say(f"Starting {job.spec.name}…")
        self.handle = self.studio.run_task(job.run, on_result=self._on_outcome,
                                           on_error=self._on_job_error,
                                           on_progress=self._on_progress,
                                           on_finished=self._on_job_done)
        self._drain_timer.start()
        self.jobStarted.emit(job.spec.id)

    def stop(self) -> None:
        """Stop early; an optimisation keeps its best picture so far."""
        if self.running and self.job is not None:
            self.job.stop()
            self.handle.cancel()
            self._say("Stopping…")

    def _set_running(self, on: bool) -> None:
        self.repaint.set_running(on)
        if self.fast is not None:
            self.fast.set_running(on)

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(text or "%p%")

    def _drain(self) -> None:
        if self.job is None:
            return
        for event in self.job.inbox.drain():
            if isinstance(event, ev.Metrics):
                self.chart.add_point(event.step, {k: v for k, v in event.values.items()
                                                  if k in LOSS_KEYS})
            elif isinstance(event, ev.Samples):
                self.compare.set_after(array_to_qimage(event.grid))
            elif isinstance(event, ev.Warning):
                self._say(f"warning: {event.message}")

    def _on_outcome(self, outcome: JobOutcome) -> None:
        self._outcome = outcome
        self._drain()
        if outcome.result is not None:
            self.result = outcome.result
            self.compare.set_after(array_to_qimage(outcome.result))
            self.save_button.setEnabled(True)
            self.resultReady.emit()
        if outcome.reason == "failed":
            self._notify(self._page.notice, outcome.message)
            self._say(outcome.message)
            return
        unit = "iterations" if self._page is self.repaint else "steps"
        note = "" if outcome.reason == "completed" else (
            " (stopped: best image so far)" if outcome.result is not None else " (stopped)")
        self._say(f"{outcome.reason} after {outcome.step} {unit}{note}")

    def _on_job_error(self, message: str, _tb: str) -> None:
        self._outcome = JobOutcome("failed", 0, self.run_dir or Path("."), message)
        self._notify(self._page.notice, message)
        self._say(message)

    def _on_job_done(self) -> None:
        self._drain()
        self._drain_timer.stop()
        self.progress.setVisible(False)
        self._set_running(False)
        reason = self._outcome.reason if self._outcome is not None else "failed"
        if self._page is self.fast and self.run_dir is not None:
            self.studio.runs_changed.emit()  # a trained network is a run the Runs tab lists
        self.jobFinished.emit(reason)

    # -- results -----------------------------------------------------------------------------
    def save_result(self, path: str | Path) -> Path:
        """Write the result picture; raises UserError with the reason."""
        if self.result is None:
            raise UserError("no result to save yet")
        written = save_picture(self.result, path)
        self._say(f"Saved {written}")
        return written

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the result", "stylized.png",
                                              "PNG (*.png);;JPEG (*.jpg)")
        if path:
            try:
                self.save_result(path)
            except UserError as e:
                self._say(str(e))

    def apply_network(self) -> bool:
        """Apply a trained fast style network in a background task."""
        if self.fast is None:
            return False
        try:
            net_dir, inputs, out, size = self.fast.applying()
        except UserError as e:
            self._notify(self.fast.apply_notice, sentence(str(e)))
            self._say(str(e))
            return False
        self.fast.apply_notice.clear()
        pm, device = self.pm, self.studio.device()
        self.fast.apply_button.setEnabled(False)
        self._say("Applying the network…")
        self.other_tasks.append(self.studio.run_task(
            lambda ctx: apply_network(pm, net_dir, inputs, out, size, device, ctx),
            on_result=self._on_applied, on_error=self._on_apply_error,
            on_progress=lambda f, t: self._say(f"Applying: {t}"),
            on_finished=lambda: self.fast.apply_button.setEnabled(True)))
        return True

    def _on_applied(self, applied: Any) -> None:
        if applied.source is not None:
            before = QImage(str(applied.source))
            self.compare.set_before(None if before.isNull() else before)
        if applied.first is not None:
            self.result = applied.first
            self.compare.set_after(array_to_qimage(self.result))
            self.save_button.setEnabled(True)
        where = applied.written[0].parent if applied.written else ""
        self._say(f"Stylized {len(applied.written)} picture(s), {applied.ms:.1f} ms per "
                  f"picture; written to {where}")
        self.applyFinished.emit(len(applied.written))

    def _on_apply_error(self, message: str, _tb: str) -> None:
        self._notify(self.fast.apply_notice, message)
        self._say(message)
        self.applyFinished.emit(-1)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the network", "style.onnx",
                                              "ONNX (*.onnx)")
        if path:
            self.export_onnx(path)

    def export_onnx(self, path: str | Path) -> bool:
        if self.fast is None:
            return False
        net_dir = self.fast.net_edit.text().strip()
        if not net_dir:
            self._notify(self.fast.apply_notice, "Choose the trained network's run folder first.")
            return False
        pm = self.pm
        self._say("Exporting the network to ONNX and checking it in onnxruntime…")
        self.other_tasks.append(self.studio.run_task(
            lambda _ctx: export_network_onnx(pm, net_dir, path),
            on_result=self._on_exported, on_error=self._on_export_error))
        return True

    def _on_exported(self, report: Any) -> None:
        self._say(f"Wrote {report.path} (checked in onnxruntime: largest difference from "
                  f"torch {report.max_abs_diff:.1g} on {len(report.checked_shapes)} shapes)")
        self.exportFinished.emit(str(report.path))

    def _on_export_error(self, message: str, _tb: str) -> None:
        self._notify(self.fast.apply_notice, message)
        self._say(message)
        self.exportFinished.emit("")

    # -- closing -----------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Stop every job of this tab and wait for it (the studio calls this at close)."""
        self.stop()
        handles = [self.handle] + self.other_tasks
        ok = all(h is None or h.wait(timeout_ms) for h in handles)
        ok = self.weights.shutdown(timeout_ms) and ok
        ok = self.repaint_estimate.close(timeout_ms) and ok
        if self.fast is not None:
            ok = self.fast_estimate.close(timeout_ms) and ok
        self._drain_timer.stop()
        if ok:
            self._remove_temp_run()
        return ok

    def _remove_temp_run(self) -> None:
        """Delete the temporary run folder of the previous optimisation (not while running)."""
        if self._temp_run is not None and not self.running:
            shutil.rmtree(self._temp_run, ignore_errors=True)
            self._temp_run = None

    def _notify(self, notice: Any, text: str, *actions: Any) -> None:
        """Show ``text`` in ``notice`` (next to the button that was used), scrolled into view."""
        notice.show_text(text, *actions)
        if self.fast is not None and self.fast.isAncestorOf(notice):
            QTimer.singleShot(0, lambda: self.fast_scroll.ensureWidgetVisible(notice))

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.message.emit(text)

