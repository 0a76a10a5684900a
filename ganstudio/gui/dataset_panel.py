"""The dataset panel: choose a folder (dialog or drag and drop), see what will be trained on."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QLineEdit, QListView,
                               QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from .grid import array_to_qimage

THUMBS = 32


class DatasetPanel(QWidget):
    folderChosen = Signal(str)
    demoRequested = Signal()
    scanned = Signal(object)      # the DatasetReport of a finished scan

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("datasetPath")
        self.path_edit.setPlaceholderText("Type, paste, choose or drop a folder of images")
        self.path_edit.setToolTip("A folder of images: type or paste its path and press "
                                  "Enter, or use Choose folder…, or drop it here")
        self.path_edit.editingFinished.connect(self._typed)
        self.choose = QPushButton("Choose folder…")
        self.choose.clicked.connect(self.choose_folder)
        self.demo = QPushButton("Demo images")
        self.demo.setToolTip("Use the bundled demo dataset of generated shapes")
        self.demo.clicked.connect(self.demoRequested)
        row = QHBoxLayout()
        row.addWidget(self.choose)
        row.addWidget(self.demo)
        self.report = None
        self.info = QLabel("No folder chosen. Drop a folder of images here.")
        self.info.setObjectName("datasetInfo")
        self.info.setWordWrap(True)
        self.thumbs = QListWidget()
        self.thumbs.setObjectName("thumbStrip")
        self.thumbs.setViewMode(QListView.IconMode)
        self.thumbs.setFlow(QListView.LeftToRight)
        self.thumbs.setWrapping(True)
        self.thumbs.setIconSize(QSize(40, 40))
        self.thumbs.setResizeMode(QListView.Adjust)
        self.thumbs.setMovement(QListView.Static)
        self.thumbs.setMaximumHeight(150)
        self.skipped_label = QLabel("Skipped files")
        self.skipped = QListWidget()
        self.skipped.setObjectName("skippedList")
        self.skipped.setMaximumHeight(110)
        self.skipped.setWordWrap(True)  # the reasons are the point: never cut them off
        self.skipped.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.skipped_label.setVisible(False)
        self.skipped.setVisible(False)
        lay = QVBoxLayout(self)
        lay.addWidget(self.path_edit)
        lay.addLayout(row)
        lay.addWidget(self.info)
        lay.addWidget(self.thumbs)
        lay.addWidget(self.skipped_label)
        lay.addWidget(self.skipped)
        lay.addStretch(1)
        self.folder: str | None = None
        self._scan_token = 0
        self.last_dir = ""

    # -- choosing ----------------------------------------------------------------------------
    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of training images",
                                                self.folder or self.last_dir)
        if path:
            self.set_folder(path)

    def _typed(self) -> None:
        """A path typed or pasted (Enter or leaving the box): use it when it is a folder;
        otherwise say why and keep the folder in use."""
        text = self.path_edit.text().strip()
        if not text or text == (self.folder or ""):
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self.set_folder(str(path))
            return
        why = ("is a file, not a folder" if path.is_file() else "does not exist")
        self.path_edit.setText(self.folder or "")
        self.info.setText(f"<span style='color:#e5484d'>{html.escape(text)} {why}.</span>"
                          + (" The folder in use is unchanged." if self.folder else ""))

    def set_folder(self, path: str, emit: bool = True) -> None:
        # Absolute: the run folder records it, and a relative path breaks on reopening
        # the run from another working directory.
        self.folder = str(Path(path).expanduser().absolute())
        self.last_dir = str(Path(self.folder).parent)
        self.path_edit.setText(self.folder)
        self.path_edit.setToolTip(self.folder)
        self.set_busy("The images are read once the models have loaded…")
        if emit:
            self.folderChosen.emit(self.folder)

    @staticmethod
    def _dropped_folder(event) -> str | None:
        md = event.mimeData()
        if not md.hasUrls():
            return None
        for url in md.urls():
            if url.isLocalFile():
                p = Path(url.toLocalFile())
                if p.is_dir():
                    return str(p)
                if p.is_file():
                    return str(p.parent)
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self._dropped_folder(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        folder = self._dropped_folder(event)
        if folder:
            event.acceptProposedAction()
            self.set_folder(folder)

    # -- reading -----------------------------------------------------------------------------
    def scan(self, tasks, resolution: int, channels: int, fit: str) -> None:
        """Read the folder in the background (``tasks``: the studio's Tasks): counts,
        thumbnails, skipped files. A newer scan supersedes one still running."""
        folder = self.folder
        if not folder:
            return
        self._scan_token += 1
        token = self._scan_token
        self.set_busy(f"Reading images in {folder}…")

        def work(_ctx):
            from ganstudio.core.data import load_dataset
            images, report = load_dataset(folder, resolution, channels, fit)
            return report, images[:32].numpy().copy()

        def done(result):
            if token == self._scan_token:
                self.set_report(*result)
                self.scanned.emit(result[0])

        def failed(msg, _tb):
            if token == self._scan_token:
                self.set_error(msg)

        tasks.run(work, on_result=done, on_error=failed, name="scan")

    # -- showing -----------------------------------------------------------------------------
    def add_note(self, text: str) -> None:
        """A sentence after the summary (e.g. a setting chosen from the images)."""
        self.info.setText(self.info.text() + " " + html.escape(text))

    def set_busy(self, text: str) -> None:
        self.info.setText(text)

    def set_error(self, message: str) -> None:
        self.info.setText(f"<span style='color:#e5484d'>{message}</span>")
        self.thumbs.clear()

    def set_report(self, report, thumbs: np.ndarray | None = None) -> None:
        """Show a DatasetReport and thumbnails (N, C, H, W) uint8."""
        colour = {1: "grayscale", 3: "colour"}.get(report.channels,
                                                   f"{report.channels} channels")
        n_skip = len(report.skipped)
        skipped = "none skipped" if not n_skip else (
            f"<b>{n_skip:,}</b> file{'s' if n_skip != 1 else ''} skipped (listed below)")
        src = " Read from the cache." if getattr(report, "from_cache", False) else ""
        n_other = int(getattr(report, "other_files", 0) or 0)
        other = ""
        if n_other:
            what = "files that are not images" if n_other != 1 else "file that is not an image"
            names = ", ".join(report.other_examples[:3]) + (", …" if n_other > 3 else "")
            other = f" {n_other:,} {what} left out" + (f" ({html.escape(names)})"
                                                      if report.other_examples else "") + "."
        grey = (" All images are greyscale." if getattr(report, "grayscale", None)
                and report.channels != 1 else "")
        self.info.setText(f"<b>{report.used:,}</b> images, trained at "
                          f"<b>{report.resolution}×{report.resolution}</b> px in {colour}; "
                          f"{skipped}.{other}{grey}{src}")
        self.report = report
        if thumbs is not None:
            self.thumbs.clear()
            for arr in thumbs[:THUMBS]:
                img = array_to_qimage(np.ascontiguousarray(arr.transpose(1, 2, 0)))
                item = QListWidgetItem(QIcon(QPixmap.fromImage(img.scaled(
                    40, 40, Qt.KeepAspectRatio, Qt.FastTransformation))), "")
                self.thumbs.addItem(item)
        self.skipped.clear()
        for s in report.skipped:
            item = QListWidgetItem(f"{Path(s.path).name}: {s.reason}")
            item.setToolTip(f"{s.path}\n{s.reason}")
            self.skipped.addItem(item)
        has = bool(report.skipped)
        self.skipped_label.setText(f"Skipped files ({len(report.skipped)})")
        self.skipped_label.setVisible(has)
        self.skipped.setVisible(has)
