"""Small shared widgets: the message bar above the views and the export dialog."""
from __future__ import annotations

from pathlib import Path

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QRadioButton, QSpinBox, QVBoxLayout, QWidget)

from .theme import current_theme

# (background, text) per theme and level: a dark strip in the light theme reads as an alarm.
_LEVEL_STYLE = {
    "dark": {"info": ("#1f3a5f", "#9cc3ff"), "warning": ("#4a3b12", "#ffd27a"),
             "error": ("#4d1f24", "#ff9aa2")},
    "light": {"info": ("#dbe8fc", "#17457f"), "warning": ("#fcefc7", "#6b4a00"),
              "error": ("#fbe0e2", "#8f1d29")},
}


class InfoBar(QFrame):
    """A strip with a message and action buttons; errors land here, not in tracebacks."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("infoBar")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(10, 6, 6, 6)
        self.row.addWidget(self.label, 1)
        self.buttons: dict[str, QPushButton] = {}
        self.level = ""
        self.kind = ""
        self.close_button = QPushButton("×")
        self.close_button.setFlat(True)
        self.close_button.setFixedSize(28, 24)
        self.close_button.setStyleSheet("padding: 0px; font-size: 16px;")
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        self.row.addWidget(self.close_button)
        self.hide()

    def show_message(self, text: str, level: str = "info",
                     actions: list[tuple[str, Callable[[], None]]] = (), kind: str = "") -> None:
        for b in self.buttons.values():
            self.row.removeWidget(b)
            b.deleteLater()
        self.buttons = {}
        for label, callback in actions:
            b = QPushButton(label)
            b.clicked.connect(lambda _=False, cb=callback: (self.dismiss(), cb()))
            self.row.insertWidget(self.row.count() - 1, b)
            self.buttons[label] = b
        self.label.setText(text)
        self.level, self.kind = level, kind
        self.restyle()
        self.show()

    def colours(self) -> tuple[str, str]:
        """(background, text) for the current level in the current theme."""
        levels = _LEVEL_STYLE.get(current_theme(), _LEVEL_STYLE["dark"])
        return levels.get(self.level, levels["info"])

    def restyle(self) -> None:
        """Colour the strip for its level in the current theme (call after a theme change)."""
        bg, fg = self.colours()
        self.setStyleSheet(f"#infoBar {{ background: {bg}; border-radius: 4px; }}"
                           f"#infoBar QLabel {{ color: {fg}; }}")

    def dismiss(self) -> None:
        self.kind = ""
        self.hide()


EXPORT_KINDS = {
    "grid": "Current grid (PNG)",
    "samples": "N new samples (PNG files)",
    "timelapse": "Time-lapse of all grids (GIF or MP4)",
    "generator": "Generator weights (.safetensors or .pt)",
}


class ExportDialog(QDialog):
    """Pick what to export and where."""

    def __init__(self, run_name: str, has_grid: bool, last_dir: str = "",
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Export from {run_name}")
        self.run_name = run_name
        self.last_dir = last_dir
        self._path_edited = False  # the user typed or browsed: keep their path
        self.group = QButtonGroup(self)
        lay = QVBoxLayout(self)
        self.radios = {}
        for key, text in EXPORT_KINDS.items():
            r = QRadioButton(text)
            r.setEnabled(key != "grid" or has_grid)
            self.group.addButton(r)
            self.radios[key] = r
            lay.addWidget(r)
        (self.radios["grid"] if has_grid else self.radios["timelapse"]).setChecked(True)
        form = QFormLayout()
        self.count = QSpinBox()
        self.count.setRange(1, 10_000)
        self.count.setValue(64)
        self.fmt = QComboBox()
        form.addRow("Samples", self.count)
        form.addRow("Format", self.fmt)
        from .export_options import OutputOptions
        self.output = OutputOptions()
        form.addRow(self.output)
        self.path = QLineEdit()
        self.path.setMinimumWidth(320)
        self.path.textEdited.connect(self._on_path_edited)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form.addRow("Save to", row)
        lay.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.group.buttonToggled.connect(lambda *_: self._update())
        self.fmt.currentTextChanged.connect(lambda _t: self._suggest_path())
        self._update()

    def kind(self) -> str:
        return next(k for k, r in self.radios.items() if r.isChecked())

    def _update(self) -> None:
        kind = self.kind()
        self.count.setEnabled(kind == "samples")
        self.output.set_kind(kind)
        self.fmt.blockSignals(True)
        self.fmt.clear()
        self.fmt.addItems({"grid": [".png"], "samples": ["folder"], "timelapse": [".gif", ".mp4"],
                           "generator": [".safetensors", ".pt"]}[kind])
        self.fmt.blockSignals(False)
        self._suggest_path()

    def _on_path_edited(self, text: str) -> None:
        self._path_edited = bool(text.strip())

    def _suggest_path(self) -> None:
        """A ready-to-use file name (in the last export folder) until the user picks one."""
        if self._path_edited:
            return
        kind, ext = self.kind(), self.fmt.currentText()
        base = Path(self.last_dir).expanduser() if self.last_dir else Path.home()
        name = f"{self.run_name}-{kind}" + ("" if kind == "samples" else ext)
        self.path.setText(str(base / name))

    def target(self) -> str:
        """The chosen path, with the chosen format's extension when it was left off."""
        path = self.path.text().strip()
        ext = self.fmt.currentText()
        if path and ext.startswith(".") and not path.lower().endswith(ext):
            known = (".png", ".gif", ".mp4", ".safetensors", ".pt")
            if not any(path.lower().endswith(k) for k in known):
                path += ext
        return path

    def _browse(self) -> None:
        kind = self.kind()
        if kind == "samples":
            path = QFileDialog.getExistingDirectory(self, "Folder for the samples", self.last_dir)
        else:
            ext = self.fmt.currentText()
            path, _ = QFileDialog.getSaveFileName(self, "Save as", self.last_dir,
                                                  f"*{ext}")
            if path and not path.lower().endswith(ext):
                path += ext
        if path:
            self.path.setText(path)
            self._path_edited = True
