"""Interpolation: pinned points (seeds, projected pictures), the path as a strip, and a
seamless loop exported as MP4 or GIF with progress and Cancel."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QProgressBar, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from .views import ImageView, OneJob

STRIP = 8
STRIP_TILE = 64


class InterpolationView(QWidget):
    def __init__(self, panel: Any):
        super().__init__()
        self.panel = panel
        self.points = QListWidget()
        self.points.setToolTip("Pinned seeds and projected pictures; the ticked ones, in this "
                               "order, are the loop's points")
        self.random_walk = QCheckBox("Random walk through")
        self.walk_points = QSpinBox()
        self.walk_points.setRange(2, 64)
        self.walk_points.setValue(6)
        self.walk_seed = QSpinBox()
        self.walk_seed.setRange(0, 1_000_000)
        self.walk_seed.setPrefix("seed ")
        self.ease = QCheckBox("Slow down at each point")
        self.strip = [ImageView(STRIP_TILE) for _ in range(STRIP)]
        self.strip_label = QLabel("Pin two or more seeds (Seeds tab) or pictures (Project tab)")
        self.strip_label.setWordWrap(True)

        self.seconds = QDoubleSpinBox()
        self.seconds.setRange(0.5, 600)
        self.seconds.setValue(8)
        self.seconds.setSuffix(" s")
        self.fps = QSpinBox()
        self.fps.setRange(1, 120)
        self.fps.setValue(30)
        self.size = QSpinBox()
        self.size.setRange(16, 2048)
        self.size.setValue(256)
        self.size.setSuffix(" px")
        self.format = QComboBox()
        self.format.addItems(["MP4", "GIF"])
        self.path = QLineEdit()
        self.path.setPlaceholderText("file to write (asked when empty)")
        self.export_button = QPushButton("Export loop")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)

        left = QVBoxLayout()
        left.addWidget(QLabel("Points of the loop:"))
        left.addWidget(self.points, 1)
        left.addWidget(self.random_walk)
        walk = QHBoxLayout()
        walk.addWidget(self.walk_points)
        walk.addWidget(QLabel("points,"))
        walk.addWidget(self.walk_seed)
        left.addLayout(walk)
        left.addWidget(self.ease)

        strip = QHBoxLayout()
        for view in self.strip:
            strip.addWidget(view)
        strip.addStretch(1)

        box = QGroupBox("Seamless loop video")
        form = QFormLayout(box)
        form.addRow("Length:", self.seconds)
        form.addRow("Frames per second:", self.fps)
        form.addRow("Size:", self.size)
        form.addRow("Format:", self.format)
        form.addRow("File:", self.path)
        row = QHBoxLayout()
        row.addWidget(self.export_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        form.addRow(row)
        form.addRow(self.progress)
        form.addRow(self.result_label)

        right = QVBoxLayout()
        right.addWidget(QLabel("The loop (it ends where it starts):"))
        right.addLayout(strip)
        right.addWidget(self.strip_label)
        right.addWidget(box)
        right.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(right, 3)

        self.strip_job = OneJob(self._start_strip)
        self.export_handle = None
        self.points.itemChanged.connect(lambda _i: self.update_strip())
        self.random_walk.toggled.connect(lambda _on: self.update_strip())
        self.walk_points.valueChanged.connect(lambda _v: self.update_strip())
        self.walk_seed.valueChanged.connect(lambda _v: self.update_strip())
        self.ease.toggled.connect(lambda _on: self.update_strip())
        # the strip shows what the loop will be: the Seeds page's truncation included
        panel.seeds.psi.valueChanged.connect(lambda _v: self.update_strip())
        self.export_button.clicked.connect(self.export)
        self.cancel_button.clicked.connect(self.cancel)
        self.format.currentTextChanged.connect(self._format_changed)
        panel.pins_changed.connect(self.reload_points)
        panel.explorer_changed.connect(lambda _e: self.reload_points())

    # -- the points ------------------------------------------------------------------------------
    def reload_points(self) -> None:
        from ganstudio.core.explore_state import read_state
        # a point keeps its tick across reloads; a newly pinned one starts ticked
        ticked = {self.points.item(i).data(Qt.UserRole)["key"]:
                  self.points.item(i).checkState() == Qt.Checked
                  for i in range(self.points.count())}
        self.points.blockSignals(True)
        self.points.clear()
        pins = read_state(self.panel.run)["pins"] if self.panel.run else []
        for pin in pins:
            key = f"seed:{pin['seed']}" if "seed" in pin else f"latent:{pin['latent']}"
            text = f"seed {pin['seed']}" if "seed" in pin else f"{pin.get('label', '')} (picture)"
            item = QListWidgetItem(text)
            item.setData(Qt.UserRole, {**pin, "key": key})
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if ticked.get(key, True) else Qt.Unchecked)
            self.points.addItem(item)
        self.points.blockSignals(False)
        self.update_strip()

    def keys(self) -> tuple[Any, list[str]]:
        """The loop's points as latents (K, dim) and labels; K may be < 2."""
        import torch
        from ganstudio.core.latents import load_latent, random_latents, seed_latents
        ex = self.panel.explorer
        if self.random_walk.isChecked():
            n = self.walk_points.value()
            return (random_latents(n, ex.dim, ex.distribution, self.walk_seed.value()),
                    [f"random {i}" for i in range(n)])
        rows, labels = [], []
        for i in range(self.points.count()):
            item = self.points.item(i)
            if item.checkState() != Qt.Checked:
                continue
            pin = item.data(Qt.UserRole)
            if "seed" in pin:
                rows.append(seed_latents([pin["seed"]], ex.dim, ex.distribution))
            else:
                rows.append(load_latent(Path(self.panel.run) / pin["latent"], ex.dim)[:1])
            labels.append(item.text())
        return (torch.cat(rows) if rows else torch.zeros(0, ex.dim)), labels

    def psi(self) -> float:
        return self.panel.seeds.psi_value()

    # -- the strip -------------------------------------------------------------------------------
    def update_strip(self) -> None:
        if self.panel.explorer is not None:
            self.strip_job.request()

    def _start_strip(self) -> Any:
        from ganstudio.core.errors import UserError
        from ganstudio.core.latents import loop_latents, truncate
        ex = self.panel.explorer
        if ex is None:
            return None
        try:
            keys, labels = self.keys()
        except UserError as e:
            self.strip_label.setText(str(e))
            return None
        if keys.shape[0] < 2:
            for view in self.strip:
                view.clear_image()
            self.strip_label.setText("Pin two or more seeds (Seeds tab) or pictures (Project "
                                     "tab), or choose a random walk")
            return None
        psi, ease = self.psi(), self.ease.isChecked()

        def work(_ctx):
            z = truncate(loop_latents(keys, STRIP, ex.distribution, ease), psi, ex.distribution)
            return ex.images(z)

        def done(images):
            for view, img in zip(self.strip, images):
                view.show_image(img)
            shown_psi = f", ψ {psi:.2f} (Seeds page)" if ex.distribution == "gaussian" else ""
            self.strip_label.setText(f"{len(labels)} points: " + " → ".join(labels[:8])
                                     + (" …" if len(labels) > 8 else "") + f" → {labels[0]}"
                                     + shown_psi)

        return self.panel.task(work, on_result=done,
                               on_error=lambda m, _t: self.strip_label.setText(m),
                               on_finished=self.strip_job.finished)

    # -- the video -------------------------------------------------------------------------------
    def _format_changed(self, text: str) -> None:
        current = self.path.text().strip()
        if current:
            self.path.setText(str(Path(current).with_suffix("." + text.lower())))

    def export(self) -> None:
        from ganstudio.core.errors import UserError
        from ganstudio.core.loops import render_loop
        ex = self.panel.explorer
        if ex is None or (self.export_handle is not None and self.export_handle.running):
            return
        try:
            keys, _labels = self.keys()
        except UserError as e:
            self.result_label.setText(str(e))
            return
        if keys.shape[0] < 2:
            self.result_label.setText("A loop needs two or more points")
            return
        path = self.path.text().strip()
        suffix = "." + self.format.currentText().lower()
        if not path:
            start = str(Path(self.panel.run or Path.home()) / f"loop{suffix}")
            path, _f = QFileDialog.getSaveFileName(self, "Export loop", start,
                                                   f"{self.format.currentText()} (*{suffix})")
            if not path:
                return
            self.path.setText(path)
        if Path(path).suffix.lower() not in (".mp4", ".gif"):
            path = str(Path(path).with_suffix(suffix))
            self.path.setText(path)
        settings = dict(seconds=self.seconds.value(), fps=float(self.fps.value()),
                        psi=self.psi(), size=self.size.value(), ease=self.ease.isChecked())

        def work(ctx):
            return render_loop(ex, keys, path, **settings, cancelled=ctx.cancelled,
                               progress=lambda d, n: ctx.progress(d / n, f"frame {d} of {n}"))

        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.result_label.setText("")
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.export_handle = self.panel.task(
            work, on_result=self._exported, on_error=self._failed,
            on_progress=lambda f, text: (self.progress.setValue(int(f * 1000)),
                                         self.progress.setFormat(text)),
            on_finished=self._export_finished)

    def cancel(self) -> None:
        if self.export_handle is not None:
            self.export_handle.cancel()
            self.progress.setFormat("cancelling…")

    def _exported(self, result: Any) -> None:
        if result.path is None:
            self.result_label.setText("Cancelled; nothing was written")
            self.progress.setFormat("cancelled")
        else:
            self.result_label.setText(f"Wrote {result.path} ({result.frames} frames, "
                                      f"{result.seconds:.1f} s)")
            self.progress.setFormat("done")
            self.panel.studio.show_status(f"Loop written to {result.path}")

    def _failed(self, message: str, _tb: str) -> None:
        self.result_label.setText(message)
        self.progress.setFormat("failed")

    def _export_finished(self) -> None:
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
