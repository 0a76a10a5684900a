"""Projection: drop a picture, watch the model's closest image appear, pin the result."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from .views import ImageView

PREVIEW = 224


class ProjectionView(QWidget):
    def __init__(self, panel: Any):
        super().__init__()
        self.panel = panel
        self.setAcceptDrops(True)
        self.picture = QLineEdit()
        self.picture.setPlaceholderText("a picture to find in the model (or drop one here)")
        self.browse_button = QPushButton("Choose…")
        self.steps = QSpinBox()
        self.steps.setRange(1, 20_000)
        self.steps.setValue(300)
        self.starts = QSpinBox()
        self.starts.setRange(1, 32)
        self.starts.setValue(4)
        self.start_button = QPushButton("Project")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.pin_button = QPushButton("Pin result")
        self.pin_button.setToolTip("Keep the found latent in the run: it becomes a point for "
                                   "interpolations and loops")
        self.pin_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.target_view = ImageView(PREVIEW)
        self.result_view = ImageView(PREVIEW)
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.picture, 1)
        row.addWidget(self.browse_button)
        form = QFormLayout()
        form.addRow("Picture:", row)
        form.addRow("Steps:", self.steps)
        form.addRow("Starting points:", self.starts)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.pin_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        views = QHBoxLayout()
        for title, view in (("Picture", self.target_view), ("Closest the model makes",
                                                            self.result_view)):
            col = QVBoxLayout()
            col.addWidget(QLabel(title))
            col.addWidget(view)
            views.addLayout(col)
        views.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addLayout(views)
        layout.addWidget(self.error_label)
        layout.addStretch(1)

        self.handle = None
        self.result = None
        self._latest = None     # the newest preview, handed over from the job's thread
        self.browse_button.clicked.connect(self._browse)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.pin_button.clicked.connect(self.pin)
        panel.explorer_changed.connect(lambda ex: self.start_button.setEnabled(ex is not None))

    # -- choosing a picture ----------------------------------------------------------------------
    def _browse(self) -> None:
        path, _f = QFileDialog.getOpenFileName(
            self, "Picture to project", str(Path.home()),
            "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif)")
        if path:
            self.picture.setText(path)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.picture.setText(urls[0])
            event.acceptProposedAction()
            self.start()

    # -- the search ------------------------------------------------------------------------------
    def start(self) -> None:
        from ganstudio.core.projection import load_picture, project
        ex = self.panel.explorer
        if ex is None or (self.handle is not None and self.handle.running):
            return
        path = self.picture.text().strip()
        if not path:
            self.error_label.setText("Choose a picture first")
            return
        steps, starts = self.steps.value(), self.starts.value()
        self.result = None
        self.pin_button.setEnabled(False)
        self.result_view.clear_image()
        self.target_view.clear_image()
        self.error_label.setText("Searching…")
        self.progress.setValue(0)

        def work(ctx):
            c, h, _w = ex.image_shape()
            target = load_picture(path, c, h)
            self._latest = (target, None, None)
            ctx.progress(0.0, "")

            def report(step, total, image, err):
                self._latest = (target, image, err)
                ctx.progress(step / total, f"step {step} of {total}")

            return target, project(ex, target, steps=steps, starts=starts, progress=report,
                                   cancelled=ctx.cancelled, report_every=5)

        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.handle = self.panel.task(work, on_result=self._done, on_error=self._failed,
                                      on_progress=self._progress, on_finished=self._finished)

    def _progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        latest = self._latest
        if latest is None:
            return
        target, image, err = latest
        if self.target_view.array is None:
            self.target_view.show_image(target)
        if image is not None:
            self.result_view.show_image(image)
            self.error_label.setText(f"{text}: error {err:.4f}")

    def _done(self, result: Any) -> None:
        target, r = result
        self.result = r
        self.target_view.show_image(target)
        self.result_view.show_image(r.image)
        how = "stopped early" if r.cancelled else f"{r.steps} steps from {r.starts} starts"
        self.error_label.setText(f"Error {r.error:.4f} (pixel mean squared error, 0..1), "
                                 f"{how}")
        self.pin_button.setEnabled(True)

    def _failed(self, message: str, _tb: str) -> None:
        self.error_label.setText(message)

    def _finished(self) -> None:
        self.start_button.setEnabled(self.panel.explorer is not None)
        self.cancel_button.setEnabled(False)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def pin(self) -> None:
        """Save the found latent in RUN/explore/ and pin it."""
        from ganstudio.core.errors import UserError
        from ganstudio.core.explore_state import FOLDER, pin_latent
        from ganstudio.core.latents import save_latent
        if self.result is None or self.panel.run is None:
            return
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.picture.text()).stem) or "picture"
        folder = Path(self.panel.run) / FOLDER
        name = f"{stem}.npy"
        n = 1
        while (folder / name).exists():
            n += 1
            name = f"{stem}_{n}.npy"
        try:
            folder.mkdir(exist_ok=True)
            save_latent(folder / name, self.result.z)
            pin_latent(self.panel.run, f"{FOLDER}/{name}", stem)
        except (OSError, UserError) as e:
            self.error_label.setText(f"Cannot pin the result: {e}")
            return
        self.pin_button.setEnabled(False)
        self.panel.pins_changed.emit()
        self.panel.studio.show_status(f"Pinned the projection of {stem}")
