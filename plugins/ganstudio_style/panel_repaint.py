"""The "Repaint" page of the Style transfer tab: content and style pickers with blend
weights, the settings, the time estimate and Start / Stop with any message about
them right above. Loaded only by the studio (imports Qt)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QDoubleSpinBox, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from ganstudio.core.errors import UserError
from ganstudio.gui.forms import SettingsForm, guard_wheel

from .panel_widgets import THUMB, ImageDrop, Notice, thumbnail

#: Settings that have their own widgets in the tab (not in the generated form).
OWN_FIELDS = {"content", "style", "style_blend", "vgg_weights"}


class RepaintPage(QWidget):
    """Inputs and settings of one optimisation. Holds no job: the tab runs it."""

    contentChosen = Signal(str)
    startRequested = Signal()
    stopRequested = Signal()
    settingsChanged = Signal()
    message = Signal(str)

    def __init__(self, spec: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self.content_path: str | None = None
        self.content_aspect = 0.75   # short / long side: the time estimate uses it
        self.styles: list[tuple[str, float]] = []
        v = QVBoxLayout(self)

        self.content_drop = ImageDrop("Content picture")
        self.content_drop.filesChosen.connect(lambda paths: self.set_content(paths[0]))
        self.style_drop = ImageDrop("Add style pictures", multiple=True)
        self.style_drop.filesChosen.connect(lambda paths: [self.add_style(p) for p in paths])
        pickers = QHBoxLayout()
        pickers.addWidget(self.content_drop)
        pickers.addWidget(self.style_drop)
        v.addLayout(pickers)

        self.style_list = QListWidget()
        self.style_list.setIconSize(QPixmap(THUMB // 2, THUMB // 2).size())
        self.style_list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.style_list.setMaximumHeight(110)
        self.style_list.currentRowChanged.connect(self._on_style_row)
        self.blend_spin = QDoubleSpinBox()
        self.blend_spin.setRange(0.0, 100.0)
        self.blend_spin.setSingleStep(0.1)
        self.blend_spin.setValue(1.0)
        self.blend_spin.setToolTip("Blend weight of the selected style (relative to the others)")
        self.blend_spin.valueChanged.connect(
            lambda value: self.set_style_weight(self.style_list.currentRow(), value))
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected style picture")
        self.remove_button.clicked.connect(self.remove_selected_style)
        brow = QHBoxLayout()
        brow.addWidget(QLabel("Blend weight"))
        brow.addWidget(self.blend_spin)
        brow.addStretch(1)
        brow.addWidget(self.remove_button)
        v.addWidget(self.style_list)
        v.addLayout(brow)

        self.form = SettingsForm([f for f in spec.schema if f.name not in OWN_FIELDS])
        scales = self.form.editors.get("scales")
        if isinstance(scales, QSpinBox):  # 0 means "chosen from the size": say so
            scales.setSpecialValueText("automatic")
        self.form.changed.connect(self.settingsChanged)
        v.addWidget(self.form, 1)
        self.preview_every = QSpinBox()
        self.preview_every.setRange(1, 1000)
        self.preview_every.setValue(10)
        self.preview_every.setToolTip("Show the picture every N iterations")
        prow = QHBoxLayout()
        prow.addWidget(QLabel("Preview every"))
        prow.addWidget(self.preview_every)
        prow.addWidget(QLabel("iterations"))
        prow.addStretch(1)
        v.addLayout(prow)
        guard_wheel(self.blend_spin, self.preview_every)  # the tab scrolls; values stay put

        # The footer (estimate, message, Start / Stop) stays in view below the scrolled
        # settings: the tab places it; a message about Start is never off screen.
        self.footer = QWidget()
        fv = QVBoxLayout(self.footer)
        fv.setContentsMargins(0, 4, 0, 0)
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        self.estimate.setToolTip("Measured on this device with a short VGG-19 pass, scaled to "
                                 "the size and iterations")
        fv.addWidget(self.estimate)
        self.notice = Notice()
        fv.addWidget(self.notice)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.startRequested)
        self.stop_button = QPushButton("Stop (keep best)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stopRequested)
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        fv.addLayout(row)

    # -- inputs ------------------------------------------------------------------------------
    def set_content(self, path: str) -> None:
        self.content_path = str(path)
        self.content_drop.show_image(self.content_path)
        img = QImage(self.content_path)
        if not img.isNull():
            self.content_aspect = min(img.width(), img.height()) / max(img.width(), img.height())
        self.notice.clear()
        self.contentChosen.emit(self.content_path)
        self.settingsChanged.emit()
        self.message.emit(f"Content: {Path(path).name}")

    def add_style(self, path: str, weight: float = 1.0) -> None:
        path = str(path)
        if "|" in path:
            self.message.emit(f"The path {path} contains '|', which separates styles; "
                              "rename it.")
            return
        self.styles.append((path, float(weight)))
        item = QListWidgetItem(self.style_label(path, weight))
        pix = thumbnail(path, THUMB // 2)
        if not pix.isNull():
            item.setIcon(QIcon(pix))
        item.setToolTip(path)
        self.style_list.addItem(item)
        self.style_list.setCurrentRow(self.style_list.count() - 1)
        self.style_drop.show_image(path)
        self.notice.clear()

    @staticmethod
    def style_label(path: str, weight: float) -> str:
        return f"{Path(path).name}   ×{weight:g}"

    def _on_style_row(self, row: int) -> None:
        if 0 <= row < len(self.styles):
            self.blend_spin.blockSignals(True)
            self.blend_spin.setValue(self.styles[row][1])
            self.blend_spin.blockSignals(False)

    def set_style_weight(self, row: int, weight: float) -> None:
        if 0 <= row < len(self.styles):
            path = self.styles[row][0]
            self.styles[row] = (path, float(weight))
            self.style_list.item(row).setText(self.style_label(path, weight))

    def remove_selected_style(self) -> None:
        row = self.style_list.currentRow()
        if 0 <= row < len(self.styles):
            self.styles.pop(row)
            self.style_list.takeItem(row)
            self.style_drop.show_image(self.styles[-1][0] if self.styles else None)

    # -- values ------------------------------------------------------------------------------
    def overrides(self, weights_file: str = "") -> dict[str, Any]:
        """The style-transfer settings of the form and the pickers (raises UserError)."""
        if not self.content_path:
            raise UserError("choose a content picture first")
        if not self.styles:
            raise UserError("add at least one style picture")
        if sum(w for _, w in self.styles) <= 0:
            raise UserError("the style blend weights must add up to more than 0")
        values = self.form.values()
        values.update(content=self.content_path,
                      style="|".join(p for p, _ in self.styles),
                      style_blend=",".join(f"{w:g}" for _, w in self.styles))
        if weights_file:
            values["vgg_weights"] = weights_file
        return values

    def set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.stop_button.setEnabled(on)
