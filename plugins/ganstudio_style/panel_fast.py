"""The "Fast network" page of the Style transfer tab: train a feed-forward network for
one style on a folder, apply a trained one to pictures or folders, export it to ONNX.
Loaded only by the studio (imports Qt)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ganstudio.core.errors import UserError
from ganstudio.gui.forms import SettingsForm, guard_wheel

from .panel_repaint import OWN_FIELDS
from .panel_widgets import IMAGE_PATTERN, ImageDrop, Notice, folder_row, path_row


class FastPage(QWidget):
    """Inputs of a fast-style training and of applying / exporting a trained network."""

    trainRequested = Signal()
    stopRequested = Signal()
    applyRequested = Signal()
    exportRequested = Signal()
    settingsChanged = Signal()

    def __init__(self, spec: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self.style_path: str | None = None
        v = QVBoxLayout(self)

        train = QGroupBox("Train a network for one style")
        f = QFormLayout(train)
        self.style_drop = ImageDrop("Style picture")
        self.style_drop.filesChosen.connect(lambda p: self.set_style(p[0]))
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("folder of content pictures")
        self.run_edit = QLineEdit()
        self.run_edit.setPlaceholderText("run folder to write")
        self.steps = QSpinBox()
        self.steps.setRange(1, 10_000_000)
        self.steps.setValue(20_000)
        self.steps.setToolTip("Training steps (each one a batch of content pictures)")
        self.steps.valueChanged.connect(self.settingsChanged)
        f.addRow("Style", self.style_drop)
        f.addRow("Content folder", folder_row(self.data_edit, "Choose the content pictures' folder"))
        f.addRow("Run folder", folder_row(self.run_edit, "Choose the run folder to write"))
        f.addRow("Steps", self.steps)
        self.form = SettingsForm([x for x in spec.schema if x.name not in OWN_FIELDS])
        style_size = self.form.editors.get("style_size")
        if isinstance(style_size, QSpinBox):  # 0 means "the training size": say so
            style_size.setSpecialValueText("same as the training size")
        self.form.changed.connect(self.settingsChanged)
        f.addRow(self.form)
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        f.addRow(self.estimate)
        self.notice = Notice()
        f.addRow(self.notice)
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self.trainRequested)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stopRequested)
        tr = QHBoxLayout()
        tr.addWidget(self.train_button)
        tr.addWidget(self.stop_button)
        f.addRow(tr)
        v.addWidget(train, 1)

        use = QGroupBox("Use a trained network")
        a = QFormLayout(use)
        self.net_edit = QLineEdit()
        self.net_edit.setPlaceholderText("run folder of a trained fast style network")
        self.inputs_edit = QLineEdit()
        self.inputs_edit.setPlaceholderText("pictures or folders, separated by '|'")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output folder")
        self.size = QSpinBox()
        self.size.setRange(0, 8192)
        self.size.setSpecialValueText("original size")
        self.size.setToolTip("Long side of each picture before it is stylized")
        a.addRow("Network", folder_row(self.net_edit, "Choose the trained network's run folder"))
        a.addRow("Pictures", path_row(
            self.inputs_edit,
            ("Files…", "Choose pictures", self._pick_files),
            ("Folder…", "Choose a folder of pictures", self._pick_input_folder)))
        a.addRow("Output folder", folder_row(self.out_edit, "Choose the output folder"))
        a.addRow("Long side", self.size)
        self.apply_notice = Notice()
        a.addRow(self.apply_notice)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Stylize the pictures with the network")
        self.apply_button.clicked.connect(self.applyRequested)
        self.export_button = QPushButton("Export ONNX…")
        self.export_button.setToolTip("Write the network as an ONNX image-to-image model "
                                      "(any batch and picture size), checked against torch")
        self.export_button.clicked.connect(self.exportRequested)
        arow = QHBoxLayout()
        arow.addWidget(self.apply_button)
        arow.addWidget(self.export_button)
        a.addRow(arow)
        v.addWidget(use)
        guard_wheel(self.steps, self.size)  # the tab scrolls; values stay put

    # -- inputs ------------------------------------------------------------------------------
    def set_style(self, path: str) -> None:
        self.style_path = str(path)
        self.style_drop.show_image(self.style_path)
        self.notice.clear()

    def _pick_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Choose pictures", "", IMAGE_PATTERN)
        if paths:
            self.inputs_edit.setText("|".join(paths))

    def _pick_input_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of pictures")
        if path:
            self.inputs_edit.setText(path)

    # -- values ------------------------------------------------------------------------------
    def training(self, weights_file: str = "") -> tuple[dict[str, Any], str, Path, int]:
        """(settings, content folder, run folder, steps); UserError says what is missing."""
        if not self.style_path:
            raise UserError("choose the style picture the network should learn")
        data = self.data_edit.text().strip()
        if not data or not Path(data).expanduser().is_dir():
            raise UserError(f"content folder not found: {data or '(none)'}")
        run = self.run_edit.text().strip()
        if not run:
            raise UserError("choose a run folder for the network")
        run_dir = Path(run).expanduser()
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"{run_dir} is a file, not a run folder")
        overrides = self.form.values()
        overrides["style"] = self.style_path
        if weights_file:
            overrides["vgg_weights"] = weights_file
        return overrides, data, run_dir, int(self.steps.value())

    def applying(self) -> tuple[str, list[str], str, int | None]:
        """(network run folder, inputs, output folder, long side or None)."""
        net = self.net_edit.text().strip()
        inputs = [p.strip() for p in self.inputs_edit.text().split("|") if p.strip()]
        out = self.out_edit.text().strip()
        if not net or not inputs or not out:
            raise UserError("choose a trained network, pictures and an output folder")
        return net, inputs, out, int(self.size.value()) or None

    def set_running(self, on: bool) -> None:
        self.train_button.setEnabled(not on)
        self.stop_button.setEnabled(on)
